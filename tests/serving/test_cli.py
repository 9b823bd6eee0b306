"""The commands as an operator and a fleet use them: `modelyard keys`, `modelyard serve` in
its own process, and `modelyard device simulate` against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODELYARD
from tests.serving import fleet
from tests.serving.conftest import World

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(world: World, tmp_path: Path) -> dict[str, str]:
    out = fleet.server_env()
    out.update(
        DATABASE_URL=world.db_url, MODELYARD_HOME=str(tmp_path / "home"),
        MODELYARD_STORAGE_URL=world.store.url,
        MODELYARD_SIGNING_KEY=str(world.public_key).replace(".pub.pem", ".pem"),
    )  # fmt: skip
    return out


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODELYARD, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    params = tmp_path / "params.yaml"
    params.write_text("serve:\n  cache_ttl_s: 0\n")
    port = fleet.free_port()
    proc = subprocess.Popen(
        [*MODELYARD, "serve", "--port", str(port), "--params", str(params)],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"modelyard serve did not start: {proc.stdout.read()}")  # type: ignore[union-attr]
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_keys_serve_and_simulated_devices(
    env: dict[str, str], server: str, world: World, tmp_path: Path
) -> None:
    saved = tmp_path / "acme.key"
    created = run(env, "keys", "create", "--customer", "cus_acme", "--save", str(saved))
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("my_") and saved.read_text().strip() == secret
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert "cus_acme" in run(env, "keys", "list").stdout
    shown = run(env, "keys", "signing", "show")
    assert world.key.key_id in shown.stdout and "BEGIN PUBLIC KEY" in shown.stdout

    simulate = [
        "device", "simulate", "--policy", "fleet-policy", "--api-key", f"cus_acme=@{saved}",
        "--devices", "8", "--base-url", server, "--public-key", str(world.public_key),
        "--cache", str(tmp_path / "devices"), "--json",
    ]  # fmt: skip
    done = run(env, *simulate)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 8
    for r in results:
        if r["platform"] == "ios":  # the CoreML was never checked in its runtime: not served
            assert "coreml artifact is not verified (parity skipped" in r["error"], r
            continue
        assert r["error"] is None and r["files_verified"] >= 4 and r["telemetry"] == "created"
    assert {r["platform"] for r in results} == {"android", "ios", "linux"}
    tiers = {r["device_id"]: r["tier"] for r in results if r["platform"] != "ios"}
    from modelyard.serving import dispatch

    for device, tier in tiers.items():
        expected = dispatch.in_canary(dispatch.bucket("fleet-policy", device), 10)
        assert tier == ("canary" if expected else "production")

    grouped = run(env, *simulate[:-1], "--by-outcome")  # the same devices, one row per outcome
    assert grouped.returncode == 0, grouped.stderr
    distinct = {(r["platform"], r["tier"]) if r["tier"] else r["error"] for r in results}
    assert f"8 simulated devices, {len(distinct)} outcomes" in grouped.stdout, grouped.stdout

    prefix = secret[:11]
    assert run(env, "keys", "revoke", prefix).returncode == 0
    refused = run(env, *simulate)
    assert refused.returncode == 1
    assert all("revoked" in r["error"] for r in json.loads(refused.stdout))
