"""Migration 0011's rules, enforced by the database whatever code writes."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from modelyard.db import api_keys
from modelyard.db.connection import Connection
from modelyard.errors import ConfigError, NotFoundError

pytestmark = pytest.mark.postgres


def test_a_key_has_known_scopes_and_a_customer(conn: Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO verify_ai_api_keys (customer_id, key_hash, scopes) "
            "VALUES ('cus_a', 'h1', ARRAY['models:write'])"
        )
    with pytest.raises(ConfigError, match="valid: models:read"):
        api_keys.insert(conn, customer_id="cus_a", key_hash="h2", key_prefix="my_x",
                        scopes=["models:reed"], name=None)  # fmt: skip
    with pytest.raises(ConfigError, match="blank"):
        api_keys.insert(conn, customer_id=" ", key_hash="h3", key_prefix="my_y",
                        scopes=["models:read"], name=None)  # fmt: skip


def test_revoking_names_one_key_and_keeps_the_first_time(conn: Connection) -> None:
    row = api_keys.insert(conn, customer_id="cus_a", key_hash="h4", key_prefix="my_abcdefgh",
                          scopes=["models:read"], name="ci")  # fmt: skip
    first = api_keys.revoke(conn, "my_abcdefgh")["revoked_at"]
    assert api_keys.revoke(conn, str(row["id"]))["revoked_at"] == first
    with pytest.raises(NotFoundError, match="no such key"):
        api_keys.revoke(conn, "my_nothere")


def test_a_manifest_comes_with_its_signature_key_and_expiry(conn: Connection) -> None:
    conn.execute("INSERT INTO verify_ai_policies (policy_id, name) VALUES ('p', 'p')")
    with pytest.raises(psycopg.errors.CheckViolation, match="manifest_is_signed"):
        conn.execute(
            "INSERT INTO verify_ai_model_bundles (policy_id, bundle_version, manifest) "
            "VALUES ('p', 1, '{}')"
        )


def test_a_telemetry_window_ends_after_it_starts(conn: Connection) -> None:
    conn.execute("INSERT INTO verify_ai_policies (policy_id, name) VALUES ('p', 'p')")
    bundle = conn.execute(
        "INSERT INTO verify_ai_model_bundles (policy_id, bundle_version) VALUES ('p', 1) "
        "RETURNING id"
    ).fetchone()
    assert bundle is not None
    with pytest.raises(psycopg.errors.CheckViolation, match="telemetry_window_order"):
        conn.execute(
            "INSERT INTO verify_ai_telemetry_windows (bundle_id, device_id, customer_id, "
            "window_start, window_end, sample_count, content_sha256) "
            "VALUES (%s, 'd', 'c', now(), now() - interval '1 hour', 1, 'x')",
            (bundle["id"],),
        )
    assert uuid.UUID(str(bundle["id"]))
