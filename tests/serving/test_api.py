"""The device API on a live server over loopback, against the real database and store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest

from modelyard.errors import ConfigError
from modelyard.serving import dispatch
from modelyard.serving.api import create_app
from modelyard.serving.config import ServeParams
from tests.serving import fleet
from tests.serving.conftest import World

pytestmark = pytest.mark.postgres
POLICY = "fleet-policy"


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.url, timeout=10) as c:
        yield c


def auth(world: World, name: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[name]}"}


def latest(client: httpx.Client, world: World, device: str, key: str = "acme", **extra: str):
    params = {"policy_id": POLICY, "device_id": device, "platform": "linux", **extra}
    return client.get("/api/v1/models/latest", params=params, headers=auth(world, key))


def device_in(canary: bool, weight: int = 10, start: int = 0) -> str:
    for i in range(start, start + 100_000):
        device = f"dev-{i}"
        if dispatch.in_canary(dispatch.bucket(POLICY, device), weight) == canary:
            return device
    raise AssertionError("no such device")


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/models/latest", "/api/v1/telemetry"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_canary_device_of_the_targeted_customer_gets_the_canary(
    client: httpx.Client, world: World
) -> None:
    device = device_in(canary=True)
    response = latest(client, world, device)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bundle_tier"] == "canary" and body["bundle_version"] == 2
    assert response.headers["x-modelyard-tier"] == "canary"
    assert {a["format"] for a in body["artifacts"] if a["role"] == "model"} == {"onnx"}
    names = {a["name"] for a in body["artifacts"]}
    assert {"onnx/model.onnx", "onnx/manifest.json", "calibration.json", "classes.json"} <= names
    assert not any(n.startswith("tflite/") for n in names)
    assert body["telemetry"]["features"]["brightness"]["edges"][0] == 0.0
    assert response.headers["cache-control"].startswith("private, max-age=")


def test_devices_outside_the_canary_get_production(client: httpx.Client, world: World) -> None:
    out = device_in(canary=False)
    assert latest(client, world, out).json()["bundle_tier"] == "production"
    inside = device_in(canary=True)
    beta = latest(client, world, inside, key="beta").json()  # canary targets cus_acme only
    assert beta["bundle_tier"] == "production" and beta["bundle_version"] == 1


def test_platforms_get_their_format_and_formats_overrides(
    client: httpx.Client, world: World
) -> None:
    device = device_in(canary=False)
    for platform, fmt in (("android", "tflite"), ("windows", "onnx")):
        body = latest(client, world, device, platform=platform).json()
        models = [a for a in body["artifacts"] if a["role"] == "model"]
        assert {a["format"] for a in models} == {fmt}
        assert all(a["verified"] is True for a in models)
    both = latest(client, world, device, platform="ios", formats="onnx,tflite").json()
    assert {a["format"] for a in both["artifacts"] if a["role"] == "model"} == {"onnx", "tflite"}


def test_an_unverified_coreml_is_never_served_silently(client: httpx.Client, world: World) -> None:
    device = device_in(canary=False)
    refused = latest(client, world, device, platform="ios")
    assert refused.status_code == 404
    problem = refused.json()
    assert problem["error"] == "unverified_artifact"
    detail = problem["reason"]
    assert "coreml artifact is not verified (parity skipped: CoreML predicts on macOS only)" in (
        detail
    )
    assert "formats= one of: onnx, tflite" in detail
    assert "serve.allow_unverified: [coreml]" in detail
    # a device that also takes ONNX gets the ONNX, and is told what was withheld
    fallback = latest(client, world, device, platform="ios", formats="coreml,onnx")
    assert fallback.status_code == 200
    assert fallback.headers["X-Modelyard-Withheld"] == "coreml"
    served = {a["format"] for a in fallback.json()["artifacts"] if a["role"] == "model"}
    assert served == {"onnx"}


def test_an_operator_may_serve_unverified_coreml_and_it_says_so(world: World) -> None:
    params = ServeParams(cache_ttl_s=0, allow_unverified=("coreml",))
    with (
        fleet.live_server(create_app(world.db_url, world.store, params)) as url,
        httpx.Client(base_url=url, timeout=10) as other,
    ):
        body = latest(other, world, device_in(canary=False), platform="ios").json()
    (model,) = [a for a in body["artifacts"] if a["role"] == "model"]
    assert model["format"] == "coreml" and model["verified"] is False
    assert model["verification"] == fleet.COREML_SKIPPED
    signed = {a["name"]: a for a in json.loads(body["manifest"])["artifacts"]}
    assert signed[model["name"]]["verified"] is False  # in the signed manifest too


def test_allow_unverified_names_only_formats() -> None:
    with pytest.raises(ConfigError, match=r"serve\.allow_unverified: 'coreml2' is not a format"):
        ServeParams(allow_unverified=("coreml2",))


def test_share_of_10000_devices_in_the_canary_is_its_weight(
    client: httpx.Client, world: World
) -> None:
    tiers = [latest(client, world, f"count-{i}").headers["x-modelyard-tier"] for i in range(10_000)]
    share = tiers.count("canary") / len(tiers) * 100
    assert abs(share - 10) <= 1.5, share


def test_etag_gives_304_and_a_change_gives_a_new_etag(client: httpx.Client, world: World) -> None:
    device = device_in(canary=False)
    first = latest(client, world, device)
    etag = first.headers["etag"]
    again = client.get(
        "/api/v1/models/latest",
        params={"policy_id": POLICY, "device_id": device, "platform": "linux"},
        headers=auth(world) | {"If-None-Match": etag},
    )
    assert again.status_code == 304 and again.content == b""
    android = latest(client, world, device, platform="android")
    assert android.headers["etag"] != etag


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"platform": "symbian"}, "query.platform"),
        ({"app_version": "one"}, "query.app_version"),
        ({"device_id": ""}, "query.device_id"),
        ({"formats": "onnx,pdf"}, "formats"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: httpx.Client, world: World, params: dict[str, str], field: str
) -> None:
    query = {"policy_id": POLICY, "device_id": "d1", "platform": "linux"} | params
    response = client.get("/api/v1/models/latest", params=query, headers=auth(world))
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_no_bundle_is_404_with_a_reason(client: httpx.Client, world: World) -> None:
    response = client.get(
        "/api/v1/models/latest",
        params={"policy_id": "no-such-policy", "device_id": "d1", "platform": "linux"},
        headers=auth(world),
    )
    assert response.status_code == 404
    assert "no active bundle" in response.json()["reason"]


def test_keys_missing_unknown_revoked_and_wrong_scope(client: httpx.Client, world: World) -> None:
    query = {"policy_id": POLICY, "device_id": "d1", "platform": "linux"}
    assert client.get("/api/v1/models/latest", params=query).status_code == 401
    bad = client.get("/api/v1/models/latest", params=query, headers={"X-API-Key": "my_nope"})
    assert bad.status_code == 401 and "not known" in bad.json()["reason"]
    assert latest(client, world, "d1", key="telemetry_only").status_code == 403
    assert latest(client, world, "d1", customer_id="cus_beta").status_code == 403
    secret, key_id = fleet.api_key(world.conn, "cus_acme", ["models:read"])
    ok = client.get("/api/v1/models/latest", params=query, headers={"X-API-Key": secret})
    assert ok.status_code == 200
    from modelyard.db import api_keys

    api_keys.revoke(world.conn, str(key_id))
    revoked = client.get("/api/v1/models/latest", params=query, headers={"X-API-Key": secret})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["reason"]


def test_a_customer_never_sees_another_customers_targeted_bundle(
    client: httpx.Client, world: World
) -> None:
    canary = world.published.ids["canary"]
    for i in range(300):
        body = latest(client, world, f"beta-{i}", key="beta").json()
        assert body["bundle_id"] != str(canary)
    path = f"/api/v1/bundles/{canary}/artifacts/onnx/model.onnx"
    assert client.get(path, headers=auth(world, "beta")).status_code == 404
    assert client.get(path, headers=auth(world, "acme")).status_code == 200


def test_artifact_download_full_and_resumed(client: httpx.Client, world: World) -> None:
    bundle_id = world.published.ids["production"]
    data = world.published.files[bundle_id]["onnx/model.onnx"]
    sha = hashlib.sha256(data).hexdigest()
    path = f"/api/v1/bundles/{bundle_id}/artifacts/onnx/model.onnx"
    full = client.get(path, headers=auth(world))
    assert full.status_code == 200 and full.content == data
    assert full.headers["etag"] == f'"{sha}"'
    assert int(full.headers["content-length"]) == len(data)
    middle = len(data) // 2
    part = client.get(
        path, headers=auth(world) | {"Range": f"bytes={middle}-", "If-Range": f'"{sha}"'}
    )
    assert part.status_code == 206 and part.content == data[middle:]
    assert part.headers["content-range"] == f"bytes {middle}-{len(data) - 1}/{len(data)}"
    suffix = client.get(path, headers=auth(world) | {"Range": "bytes=-10"})
    assert suffix.content == data[-10:]
    stale = client.get(path, headers=auth(world) | {"Range": "bytes=10-", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data
    beyond = client.get(path, headers=auth(world) | {"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert client.get(path, headers=auth(world) | {"If-None-Match": f'"{sha}"'}).status_code == 304


@pytest.mark.parametrize(
    "name", ["../../../etc/passwd", "onnx/..%2fclasses.json", "%2e%2e/%2e%2e/x", "blobs/aa/bb"]
)
def test_no_path_reaches_outside_the_bundles_artifacts(
    client: httpx.Client, world: World, name: str
) -> None:
    bundle_id = world.published.ids["production"]
    response = client.get(f"/api/v1/bundles/{bundle_id}/artifacts/{name}", headers=auth(world))
    assert response.status_code == 404


def test_a_corrupted_stored_artifact_is_not_served(client: httpx.Client, world: World) -> None:
    bundle_id = world.published.ids["production"]
    artifact = next(a for a in _row(world, bundle_id)["artifacts"] if a["path"] == "classes.json")
    world.store.put_object(artifact["storage_path"], b'{"tampered": true}')
    try:
        response = client.get(
            f"/api/v1/bundles/{bundle_id}/artifacts/classes.json", headers=auth(world)
        )
        assert response.status_code == 500
        assert response.json()["error"] == "corrupt_artifact"
    finally:
        original = world.published.files[bundle_id]["classes.json"]
        world.store.put_object(artifact["storage_path"], original)


def test_rate_limit_answers_429_with_retry_after(world: World) -> None:
    params = ServeParams(cache_ttl_s=0, rate_limit_per_s=0.5, rate_limit_burst=2)
    with fleet.live_server(create_app(world.db_url, world.store, params)) as url:
        query = {"policy_id": POLICY, "device_id": "d1", "platform": "linux"}
        codes = [
            httpx.get(f"{url}/api/v1/models/latest", params=query, headers=auth(world))
            for _ in range(3)
        ]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert int(codes[2].headers["retry-after"]) >= 1


def _row(world: World, bundle_id: object) -> dict:
    from modelyard.db import bundles

    return bundles.get(world.conn, str(bundle_id))


def window(world: World, device: str, **extra: object) -> dict:
    bundle_id = world.published.ids["production"]
    counts = [0] * 16
    counts[7] = 5
    body = {
        "device_id": device,
        "bundle_id": str(bundle_id),
        "window_start": "2026-12-01T10:00:00+00:00",
        "window_end": "2026-12-01T11:00:00+00:00",
        "sample_count": 5,
        "histograms": {"brightness": {"counts": counts}, "score": {"counts": [1] * 20}},
        "class_mix": {"car": 3, "sign": 1},
    }
    return body | extra


def test_telemetry_is_stored_as_rows_and_idempotent(client: httpx.Client, world: World) -> None:
    body = window(world, "tele-1")
    first = client.post("/api/v1/telemetry", json=body, headers=auth(world))
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/telemetry", json=body, headers=auth(world))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["window_id"] == first.json()["window_id"]
    other = client.post("/api/v1/telemetry", json=body | {"sample_count": 6,
                        "histograms": {}}, headers=auth(world))  # fmt: skip
    assert other.status_code == 409
    rows = world.conn.execute(
        "SELECT feature, bin, count FROM verify_ai_telemetry_bins WHERE window_id = %s "
        "ORDER BY feature, bin",
        (first.json()["window_id"],),
    ).fetchall()
    assert [r for r in rows if r["feature"] == "brightness"] == [
        {"feature": "brightness", "bin": 7, "count": 5}
    ]
    assert sum(r["count"] for r in rows if r["feature"] == "score") == 20


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"histograms": {"brightness": {"counts": [1] * 15}}}, "histograms.brightness.counts"),
        ({"histograms": {"sharpness": {"counts": [1]}}}, "histograms.sharpness"),
        (
            {"histograms": {"brightness": {"counts": [5] + [0] * 15, "edges": [0.0] * 17}}},
            "histograms.brightness.edges",
        ),
        (
            {"histograms": {"brightness": {"counts": [4] + [0] * 15}}},
            "histograms.brightness.counts",
        ),
        ({"class_mix": {"truck": 2}}, "class_mix.truck"),
        ({"window_end": "2026-12-01T09:00:00+00:00"}, "window_end"),
        ({"sample_count": -1}, "sample_count"),
        ({"bundle_id": "not-a-uuid"}, "bundle_id"),
    ],
)
def test_telemetry_that_does_not_fit_the_reference_is_422(
    client: httpx.Client, world: World, change: dict, field: str
) -> None:
    response = client.post(
        "/api/v1/telemetry", json=window(world, "tele-bad") | change, headers=auth(world)
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_telemetry_needs_its_scope_and_a_bounded_body(client: httpx.Client, world: World) -> None:
    body = window(world, "tele-2")
    assert (
        client.post("/api/v1/telemetry", json=body, headers=auth(world, "readonly")).status_code
        == 403
    )
    huge = body | {"class_mix": {f"c{i}": 1 for i in range(3000)}}
    response = client.post("/api/v1/telemetry", content=json.dumps(huge), headers=auth(world)
                           | {"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_raising_the_canary_weight_keeps_every_device_that_was_in(
    client: httpx.Client, world: World
) -> None:
    devices = [f"raise-{i}" for i in range(2_000)]

    def canary() -> set[str]:
        return {
            d for d in devices if latest(client, world, d).headers["x-modelyard-tier"] == "canary"
        }

    before = canary()
    bundle_id = world.published.ids["canary"]
    targeting = {"customer_ids": ["cus_acme"]}
    fleet.activate(world.conn, world.key, bundle_id, tier="canary", weight=50, targeting=targeting)
    try:
        after = canary()
    finally:
        fleet.activate(world.conn, world.key, bundle_id, tier="canary", weight=10,
                       targeting=targeting)  # fmt: skip
    assert before <= after
    assert abs(len(after) / len(devices) * 100 - 50) <= 3.5  # 2,000 devices: wider than 1.5


def test_drift_state_of_a_bundle(client: httpx.Client, world: World) -> None:
    from datetime import UTC, datetime

    from modelyard.monitoring import job
    from modelyard.monitoring.drift import DriftParams

    bundle_id = world.published.ids["production"]
    start = datetime(2026, 12, 1, 14, tzinfo=UTC)  # an hour no other test sends telemetry for
    body = window(world, "drift-1") | {"window_start": start.isoformat(),
                                       "window_end": "2026-12-01T15:00:00+00:00"}  # fmt: skip
    assert client.post("/api/v1/telemetry", json=body, headers=auth(world)).status_code == 201
    job.run(world.conn, start, start.replace(hour=15), DriftParams(), "tests")
    path = f"/api/v1/bundles/{bundle_id}/drift"
    assert client.get(path, headers=auth(world)).status_code == 403  # no drift:read
    answer = client.get(path, headers=auth(world, "operator"))
    assert answer.status_code == 200, answer.text
    latest_window = answer.json()["windows"][0]
    assert latest_window["window_start"] == start.isoformat()
    assert latest_window["state"] == "insufficient"  # a handful of images is not "ok"
    assert latest_window["features"]["brightness"]["n"] >= 5
