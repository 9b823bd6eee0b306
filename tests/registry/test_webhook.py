"""Webhook signatures: what MLflow's own delivery code signs verifies; a changed body, a wrong
secret, a stale or missing timestamp do not."""

from __future__ import annotations

import json
import time

from mlflow.webhooks.delivery import _generate_hmac_signature

from modelyard.registry.webhook import DELIVERY_ID, SIGNATURE, TIMESTAMP, sign, verify

SECRET = "s3cret"  # noqa: S105 - a test's secret
BODY = json.dumps(
    {"entity": "model_version_alias", "action": "created", "data": {"name": "m", "alias": "canary"}}
)


def headers(signature: str, timestamp: str, delivery: str = "d-1") -> dict[str, str]:
    return {SIGNATURE: signature, TIMESTAMP: timestamp, DELIVERY_ID: delivery}


def test_mlflows_signature_verifies() -> None:
    now = str(int(time.time()))
    signature = _generate_hmac_signature(SECRET, "d-1", now, BODY)
    assert signature == sign(SECRET, "d-1", now, BODY.encode())
    assert verify(SECRET, headers(signature, now), BODY.encode()) is None


def test_a_changed_body_or_wrong_secret_is_refused() -> None:
    now = str(int(time.time()))
    signature = _generate_hmac_signature(SECRET, "d-1", now, BODY)
    tampered = BODY.replace("canary", "production").encode()
    assert "does not match" in (verify(SECRET, headers(signature, now), tampered) or "")
    assert "does not match" in (verify("other", headers(signature, now), BODY.encode()) or "")
    other_delivery = headers(signature, now, delivery="d-2")
    assert "does not match" in (verify(SECRET, other_delivery, BODY.encode()) or "")


def test_stale_or_missing_headers_are_refused() -> None:
    old = str(int(time.time()) - 3600)
    signature = _generate_hmac_signature(SECRET, "d-1", old, BODY)
    assert "replay" in (verify(SECRET, headers(signature, old), BODY.encode()) or "")
    assert "missing" in (verify(SECRET, {}, BODY.encode()) or "")
    assert "unix time" in (verify(SECRET, headers(signature, "soon"), BODY.encode()) or "")
