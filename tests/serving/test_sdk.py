"""The SDK's ModelManager against the live server: download, verify, swap, resume, refuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from modelyard import signing
from modelyard.db import bundles
from modelyard.errors import IntegrityError, SignatureError
from modelyard.registry import manifest
from modelyard.sdk import DownloadMode, ModelManager
from modelyard.sdk import telemetry as sdk_telemetry
from tests.serving import fleet
from tests.serving.conftest import World
from tests.serving.test_api import POLICY, device_in

pytestmark = pytest.mark.postgres


class Tamper(httpx.BaseTransport):
    """A transport that passes requests to the real one and lets a test alter answers (a
    man in the middle) and see what was asked."""

    def __init__(self, change: Callable[[httpx.Request, httpx.Response], bytes | None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.change = change
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        response.read()
        altered = self.change(request, response)
        if altered is None:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=altered)


def manager(
    world: World, tmp_path: Path, device: str, *, key: str = "acme",
    transport: httpx.BaseTransport | None = None, public_key: Path | None = None,
    platform: str = "linux",
) -> ModelManager:  # fmt: skip
    client = httpx.Client(base_url=world.url, transport=transport) if transport else None
    return ModelManager(
        world.url, world.keys[key], tmp_path / "device", policy_id=POLICY, device_id=device,
        platform=platform, public_key=public_key or world.public_key, client=client,
    )  # fmt: skip


def test_download_verifies_every_file_and_swaps_it_in(world: World, tmp_path: Path) -> None:
    device = device_in(canary=True)
    m = manager(world, tmp_path, device)
    seen: list[tuple[str, int, int]] = []
    bundle = m.download(progress=lambda *a: seen.append(a))
    assert (bundle.tier, bundle.bundle_version) == ("canary", 2)
    files = world.published.files[world.published.ids["canary"]]
    assert bundle.model("onnx").read_bytes() == files["onnx/model.onnx"]
    assert set(bundle.files) == {
        "onnx/model.onnx", "onnx/manifest.json", "calibration.json", "classes.json"
    }  # fmt: skip
    bundle.verify()
    assert (tmp_path / "device" / "current").is_symlink()
    assert seen[-1][1] == seen[-1][2]
    assert m.check_for_updates() is None  # 304: nothing new
    state = json.loads((tmp_path / "device" / "state.json").read_text())
    assert state["highest"] == {"canary": 2}


def test_a_relative_cache_folder_works_and_can_move(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    m = ModelManager(
        world.url, world.keys["acme"], Path("cache"), policy_id=POLICY,
        device_id=device_in(canary=False), platform="linux", public_key=world.public_key,
    )  # fmt: skip
    assert m.download().bundle_version == 1
    (tmp_path / "cache").rename(tmp_path / "moved")
    moved = ModelManager(
        world.url, world.keys["acme"], tmp_path / "moved", policy_id=POLICY,
        device_id=device_in(canary=False), platform="linux", public_key=world.public_key,
    )  # fmt: skip
    current = moved.current()
    assert current is not None and current.bundle_version == 1
    current.verify()


def test_a_download_resumes_from_the_partial_file(world: World, tmp_path: Path) -> None:
    bundle_id = world.published.ids["production"]
    data = world.published.files[bundle_id]["onnx/model.onnx"]
    spy = Tamper(lambda request, response: None)
    m = manager(world, tmp_path, device_in(canary=False), transport=spy)
    sha = fleet.sha256_bytes(data)
    partial = tmp_path / "device" / "partial" / f"{sha}.part"
    partial.write_bytes(data[: len(data) // 2])
    m.download()
    ranged = [r for r in spy.requests if r.url.path.endswith("onnx/model.onnx")]
    assert ranged[0].headers["range"] == f"bytes={len(data) // 2}-"
    assert m.current() is not None and m.current().model().read_bytes() == data  # type: ignore[union-attr]


def test_a_tampered_artifact_is_refused_and_nothing_is_swapped_in(
    world: World, tmp_path: Path
) -> None:
    def flip(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if request.url.path.endswith("onnx/model.onnx"):
            return b"\x00" + response.content[1:]
        return None

    m = manager(world, tmp_path, device_in(canary=False), transport=Tamper(flip))
    with pytest.raises(IntegrityError, match="sha256"):
        m.download()
    assert m.current() is None
    assert not any((tmp_path / "device" / "partial").iterdir())  # the bad file is dropped


def _edit_latest(
    edit: Callable[[dict], dict],
) -> Callable[[httpx.Request, httpx.Response], bytes | None]:
    def change(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if request.url.path.endswith("/models/latest") and response.status_code == 200:
            return json.dumps(edit(response.json())).encode()
        return None

    return change


def test_a_tampered_manifest_is_refused(world: World, tmp_path: Path) -> None:
    def bump(latest: dict) -> dict:
        signed = json.loads(latest["manifest"])
        signed["artifacts"][0]["sha256"] = "0" * 64
        return latest | {"manifest": signing.manifest_text(signed)}

    m = manager(world, tmp_path, device_in(canary=False), transport=Tamper(_edit_latest(bump)))
    with pytest.raises(SignatureError, match="does not verify"):
        m.check_for_updates()


def test_an_artifact_the_manifest_does_not_list_is_refused(world: World, tmp_path: Path) -> None:
    def swap(latest: dict) -> dict:
        latest["artifacts"][0]["sha256"] = "f" * 64
        return latest

    m = manager(world, tmp_path, device_in(canary=False), transport=Tamper(_edit_latest(swap)))
    with pytest.raises(SignatureError, match="does not"):
        m.check_for_updates()


def test_a_manifest_signed_by_another_key_is_refused(world: World, tmp_path: Path) -> None:
    other = signing.generate(tmp_path / "other.pem")
    public = tmp_path / "other.pub.pem"
    assert other.key_id != world.key.key_id
    m = manager(world, tmp_path, device_in(canary=False), public_key=public)
    with pytest.raises(SignatureError, match="does not verify"):
        m.check_for_updates()


def test_an_expired_manifest_is_refused(world: World, tmp_path: Path) -> None:
    def expire(latest: dict) -> dict:
        signed = json.loads(latest["manifest"])
        signed["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        text = signing.manifest_text(signed)
        return latest | {"manifest": text, "signature": world.key.sign(text)}

    m = manager(world, tmp_path, device_in(canary=False), transport=Tamper(_edit_latest(expire)))
    with pytest.raises(SignatureError, match="expired"):
        m.check_for_updates()


def test_a_lower_version_is_refused_unless_the_server_marks_a_rollback(
    world: World, tmp_path: Path
) -> None:
    m = manager(world, tmp_path, device_in(canary=False))
    state = tmp_path / "device" / "state.json"
    state.write_text(json.dumps({"highest": {"production": 5}, "etag": None}))
    with pytest.raises(SignatureError, match="rollback attack"):
        m.check_for_updates()
    production = world.published.ids["production"]
    manifest.sign(world.conn, production, world.key, rollback=True)
    try:
        update = m.check_for_updates()
        assert update is not None and update.manifest["rollback"] is True
        assert m.download(update).bundle_version == 1
    finally:
        manifest.sign(world.conn, production, world.key, rollback=False)


def test_rollback_swaps_the_previous_bundle_back(world: World, tmp_path: Path) -> None:
    device = device_in(canary=True)
    first = manager(world, tmp_path, device, key="beta").download()  # beta: not targeted
    assert (first.tier, first.bundle_version) == ("production", 1)
    m = manager(world, tmp_path, device)
    assert m.download().bundle_version == 2
    assert m.previous() is not None and m.previous().bundle_version == 1  # type: ignore[union-attr]
    back = m.rollback()
    assert (back.bundle_version, m.previous().bundle_version) == (1, 2)  # type: ignore[union-attr]


def test_download_modes(world: World, tmp_path: Path) -> None:
    device = device_in(canary=False)
    m = manager(world, tmp_path, device)
    assert m.get_model(DownloadMode.LOCAL_MODEL).bundle_version == 1  # none local: downloads
    offline = ModelManager(
        f"http://127.0.0.1:{fleet.free_port()}", world.keys["acme"], tmp_path / "device",
        policy_id=POLICY, device_id=device, platform="linux", public_key=world.public_key,
    )  # fmt: skip
    assert offline.get_model(DownloadMode.LOCAL_MODEL).bundle_version == 1  # no network needed
    local = offline.get_model(DownloadMode.LOCAL_MODEL_UPDATE_IN_BACKGROUND)
    assert local.bundle_version == 1
    assert offline.background is not None
    offline.background.join(timeout=10)  # the update fails quietly; the local bundle stays
    assert offline.current() is not None
    assert m.get_model(DownloadMode.LATEST_MODEL).bundle_version == 1


def test_report_sends_a_window_binned_on_the_reference_edges(world: World, tmp_path: Path) -> None:
    m = manager(world, tmp_path, device_in(canary=False))
    bundle = m.download()
    spec = json.loads((bundle.path / "latest.json").read_text())["telemetry"]
    end = datetime(2026, 12, 2, 12, tzinfo=UTC)
    window = sdk_telemetry.window(
        device_id=m.device_id, bundle_id=bundle.bundle_id, start=end - timedelta(hours=1),
        end=end, sample_count=3, spec=spec,
        features={"brightness": [10.0, 128.0, 300.0], "blur": [0.1, 2.5, 4.99]},
    )  # fmt: skip
    assert window["histograms"]["brightness"]["counts"][0] == 1
    assert window["histograms"]["brightness"]["counts"][-1] == 1  # beyond the edge: end bin
    assert m.report(window)["status"] == "created"
    assert m.report(window)["status"] == "duplicate"
    stored = bundles.reference_stats(world.conn, bundle.bundle_id)  # type: ignore[arg-type]
    assert stored and stored[0]["snapshot_type"] == "promotion"


def test_counts_match_the_reference_histogram() -> None:
    import numpy as np

    from modelyard.monitoring.reference import histogram

    values = np.random.default_rng(0).normal(128, 60, 500)
    reference = histogram("brightness", values)
    assert sdk_telemetry.counts(values, reference["edges"]) == reference["counts"]
