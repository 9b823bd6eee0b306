"""Promotion and the bridge, end to end: a really trained model registered in a real MLflow
registry, bundled by real `modelyard` processes into a real PostgreSQL, its artifacts in a
real bucket folder. Each test gets its own copy of the trained database and bucket and its
own registered model (versions of the session's registered bundle)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from mlflow import MlflowClient

from modelyard.db import connection
from modelyard.signing import load_public, verify
from tests.registry.conftest import Release, active, aliases, sha256_file
from tests.trained import Trained

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


def test_a_gate_failed_version_is_refused_and_force_needs_a_reason(release: Release) -> None:
    failed = release.new_version(passed=False)
    done = release.cli("promote", release.model, failed, "--to", "canary", check=False)
    assert done.returncode != 0
    assert "gate FAIL" in done.stderr + done.stdout and "--force" in done.stderr + done.stdout
    assert release.bundles() == []
    assert aliases(release) == {}
    refused = [e for e in release.events() if e["event"] == "promotion_refused"]
    assert refused and refused[0]["details"]["mlflow_model_version"] == failed

    no_reason = release.cli(
        "promote", release.model, failed, "--to", "canary", "--force", check=False
    )
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr + no_reason.stdout

    # An alias set behind the tool's back (the MLflow UI) is refused by the bridge too.
    release.client.set_registered_model_alias(release.model, "canary", failed)
    sync = release.cli("bridge", "sync", "--model", release.model, check=False)
    assert sync.returncode == 4 and "refused" in sync.stdout
    assert release.bundles() == []

    release.cli(
        "promote", release.model, failed, "--to", "canary", "--force",
        "--reason", "hotfix for site 7", "--actor", "alice",
    )  # fmt: skip
    (bundle,) = release.bundles()
    assert bundle["is_active"] and bundle["gate_status"] == "FAIL"
    assert bundle["force_reason"] == "hotfix for site 7" and bundle["promoted_by"] == "alice"
    forced = [e for e in release.events() if e["event"] in ("promotion_forced", "forced")]
    assert {e["event"] for e in forced} == {"promotion_forced", "forced"}
    assert all(e["actor"] == "alice" for e in forced)


def test_promote_bundles_verifies_measures_and_is_idempotent(release: Release) -> None:
    version = release.new_version()
    release.cli("promote", release.model, version, "--to", "canary", "--weight", "25",
                "--targeting", '{"region": ["eu"]}')  # fmt: skip
    (bundle,) = release.bundles()
    assert bundle["is_active"] and bundle["bundle_tier"] == "canary"
    assert bundle["weight"] == 25 and bundle["targeting"] == {"region": ["eu"]}
    assert bundle["policy_ast"]["policy_id"] == "demo-policy"
    assert bundle["git_sha"] == release.registered.passed.tags["git_sha"]
    roles = {a["role"] for a in bundle["artifacts"]}
    assert {"model", "manifest", "calibration", "gate_report", "listing"} <= roles
    for artifact in bundle["artifacts"]:
        prefix = f"verify-ai-models/demo-policy/v{bundle['bundle_version']}/"
        assert artifact["storage_path"].startswith(prefix)
        assert sha256_file(release.store / artifact["storage_path"]) == artifact["sha256"]
    (stats,) = release.rows(
        "SELECT * FROM verify_ai_model_reference_stats WHERE bundle_id = %s", (bundle["id"],)
    )
    assert stats["snapshot_type"] == "promotion"
    test_images = release.rows(
        "SELECT count(*) AS n FROM verify_ai_ml_samples WHERE split = 'test' "
        "AND review_status = 'approved'"
    )[0]["n"]
    assert stats["sample_count"] == test_images > 0
    histograms = stats["stats"]["histograms"]
    for key in ("score", "confidence", "brightness", "contrast", "blur", "detections_per_image"):
        assert len(histograms[key]["counts"]) == len(histograms[key]["edges"]) - 1
    assert sum(histograms["brightness"]["counts"]) == test_images
    assert sum(histograms["confidence"]["counts"]) == test_images
    # every detection at or above the floor is in the score histogram (a briefly trained
    # detector may have none that sure), and the per-image counts add up to the same
    assert sum(histograms["score"]["counts"]) == histograms["score"]["n"]
    per_image = histograms["detections_per_image"]
    assert per_image["n"] == test_images
    assert per_image["mean"] * test_images == pytest.approx(histograms["score"]["n"])
    labelled = stats["stats"]["class_mix"]["labelled"]
    assert set(labelled["share"]) <= {"car", "person", "sign"} and labelled["total"] > 0

    events, row = release.events(), release.bundles()
    again = release.cli("promote", release.model, version, "--to", "canary", "--weight", "25",
                        "--targeting", '{"region": ["eu"]}')  # fmt: skip
    assert "nothing to change" in again.stdout
    sync = release.cli("bridge", "sync", "--model", release.model)
    assert "nothing to change" in sync.stdout
    assert release.events() == events and release.bundles() == row

    # Unsigned, since no signing key was configured: a key and one sync sign it, once.
    assert row[0]["manifest"] is None
    key = str(release.store.parent / "signing.pem")
    release.cli("keys", "signing", "init", MODELYARD_SIGNING_KEY=key)
    signed = release.cli("bridge", "sync", "--model", release.model, MODELYARD_SIGNING_KEY=key)
    assert "manifest signed (unsigned)" in signed.stdout
    again = release.cli("bridge", "sync", "--model", release.model, MODELYARD_SIGNING_KEY=key)
    assert "nothing to change" in again.stdout
    (bundle,) = release.bundles()
    manifest = verify(bundle["manifest"], bundle["manifest_signature"],
                      load_public(Path(key.replace(".pem", ".pub.pem"))))  # fmt: skip
    assert manifest["bundle_tier"] == "canary" and manifest["rollback"] is False
    listed = {a["name"]: a["sha256"] for a in manifest["artifacts"]}
    assert listed == {a["path"]: a["sha256"] for a in bundle["artifacts"]}


def test_a_stage_transition_reaches_the_bundle_table(release: Release) -> None:
    version = release.new_version()
    release.client.transition_model_version_stage(release.model, version, "Production")
    release.cli("bridge", "sync", "--model", release.model)
    (bundle,) = active(release)
    assert bundle["bundle_tier"] == "production" and bundle["weight"] == 100
    (activated,) = [e for e in release.events() if e["event"] == "activated"]
    assert activated["details"]["via"] == "stage"

    release.client.transition_model_version_stage(release.model, version, "Archived")
    release.cli("bridge", "sync", "--model", release.model)
    assert active(release) == []
    assert release.events()[-1]["event"] == "deactivated"


def test_rollout_then_rollback(release: Release) -> None:
    key = release.store.parent / "signing.pem"
    release.env["MODELYARD_SIGNING_KEY"] = str(key)
    release.cli("keys", "signing", "init")
    public = load_public(Path(str(key).replace(".pem", ".pub.pem")))
    first, second = release.new_version(), release.new_version()
    release.cli("promote", release.model, first, "--to", "production")
    release.cli("promote", release.model, second, "--to", "canary")
    by_version = {b["mlflow_model_version"]: b for b in active(release)}
    assert by_version[first]["bundle_tier"] == "production"
    assert by_version[second]["bundle_tier"] == "canary" and by_version[second]["weight"] == 10

    release.cli("rollout", "demo-policy", "--tier", "production", "--weight", "100")
    (only,) = active(release)
    assert only["mlflow_model_version"] == second and only["bundle_tier"] == "production"
    assert aliases(release) == {"production": second}
    moved = verify(only["manifest"], only["manifest_signature"], public)
    assert (moved["bundle_tier"], moved["rollback"]) == ("production", False)  # re-signed

    release.cli("rollback", "demo-policy", "--reason", "false alarms at night", "--actor", "bob")
    (back,) = active(release)
    assert back["mlflow_model_version"] == first and back["bundle_tier"] == "production"
    assert aliases(release) == {"production": first}
    rolled = [e for e in release.events() if e["event"] == "rolled_back"]
    assert (
        rolled[-1]["actor"] == "bob" and rolled[-1]["details"]["reason"] == "false alarms at night"
    )
    assert len(release.bundles()) == 2  # reactivated, not re-bundled
    # a device holding the newer bundle accepts the older one only because it says rollback
    announced = verify(back["manifest"], back["manifest_signature"], public)
    assert announced["rollback"] is True and announced["bundle_version"] < moved["bundle_version"]

    refused = release.cli("rollback", "demo-policy", check=False)
    assert refused.returncode != 0 and "nothing to roll back to" in refused.stderr + refused.stdout


def test_twenty_concurrent_promotions_give_consecutive_versions(release: Release) -> None:
    versions = [release.new_version() for _ in range(20)]
    procs = [release.start("promote", release.model, v, "--to", "canary") for v in versions]
    outcomes = [(p.wait(timeout=900), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in outcomes), [err for code, err in outcomes if code][:1]
    made = release.bundles()
    assert [b["bundle_version"] for b in made] == list(range(1, 21))  # no gaps, no duplicates
    assert sorted(b["mlflow_model_version"] for b in made) == sorted(versions)
    holder = aliases(release)["canary"]
    (live,) = active(release)
    assert live["mlflow_model_version"] == holder and live["bundle_tier"] == "canary"
    stats = release.rows("SELECT bundle_id FROM verify_ai_model_reference_stats")
    assert sorted(str(s["bundle_id"]) for s in stats) == sorted(str(b["id"]) for b in made)

    events = release.events()
    syncs = [release.start("bridge", "sync", "--model", release.model) for _ in range(20)]
    assert all(p.wait(timeout=900) == 0 for p in syncs)
    assert release.events() == events and len(release.bundles()) == 20


@pytest.mark.parametrize("crash_at", ["reserved", "uploaded", "measured", "stats_stored"])
def test_a_sync_killed_midway_leaves_nothing_half_done(release: Release, crash_at: str) -> None:
    version = release.new_version()
    release.client.set_registered_model_alias(release.model, "canary", version)
    killed = release.cli(
        "bridge", "sync", "--model", release.model, check=False, MODELYARD_FAILPOINTS=crash_at
    )
    assert killed.returncode == -9  # SIGKILL, as kill -9
    (bundle,) = release.bundles()
    assert not bundle["is_active"]  # never active before its statistics are stored
    if crash_at == "reserved":
        assert bundle["artifacts_verified_at"] is None
    if crash_at != "stats_stored":  # whatever code asks, the database refuses to activate it
        with (
            pytest.raises(psycopg.errors.CheckViolation, match="cannot be activated"),
            connection.connect(release.url) as conn,
        ):
            conn.execute(
                "UPDATE verify_ai_model_bundles SET is_active = true, bundle_tier = 'canary', "
                "weight = 10, activated_at = now() WHERE id = %s",
                (bundle["id"],),
            )

    release.cli("bridge", "sync", "--model", release.model)
    (done,) = release.bundles()
    assert done["is_active"] and done["bundle_version"] == bundle["bundle_version"]
    assert done["artifacts_verified_at"] is not None
    for artifact in done["artifacts"]:
        assert sha256_file(release.store / artifact["storage_path"]) == artifact["sha256"]
    stats = release.rows(
        "SELECT * FROM verify_ai_model_reference_stats WHERE bundle_id = %s", (done["id"],)
    )
    assert len(stats) == 1


def test_lineage_reaches_the_sample_rows(release: Release, trained: Trained) -> None:
    version = release.new_version()
    release.cli("promote", release.model, version, "--to", "canary")
    (bundle,) = release.bundles()
    done = release.cli("lineage", f"demo-policy/v{bundle['bundle_version']}", "--json")
    links = {link["name"]: link for link in json.loads(done.stdout)}
    assert list(links) == [
        "bundle", "artifacts", "mlflow model version", "mlflow run", "model_training_runs",
        "sample rows",
    ]  # fmt: skip
    assert all(f["verified"] == "sha256 matches" for f in links["artifacts"]["facts"]["files"])
    run_id = links["mlflow model version"]["facts"]["run_id"]
    assert run_id == release.registered.passed.run_id
    expected = release.rows(
        "SELECT l.snapshot_id FROM model_training_runs r JOIN model_training_snapshot_labels l "
        "ON l.training_run_id = r.id WHERE r.model_version = %s",
        (run_id,),
    )
    rows = links["sample rows"]["facts"]["rows"]
    assert len(rows) == len(expected) > 0
    assert {r["id"] for r in rows} == {str(e["snapshot_id"]) for e in expected}
    printed = release.cli("lineage", str(bundle["id"]))
    assert "6. sample rows" in printed.stdout and "more (--rows N" in printed.stdout
    files = len(links["artifacts"]["facts"]["files"])
    assert f"{files} of {files} files in the bucket match their sha256" in printed.stdout
    assert "onnx/model.onnx" not in printed.stdout  # listed with --files, or when it fails
    listed = release.cli("lineage", str(bundle["id"]), "--files")
    assert "onnx/model.onnx" in listed.stdout and "sha256 matches" in listed.stdout


def test_bridge_serve_syncs_on_mlflow_servers_webhook_and_refuses_forgeries(
    release: Release, trained: Trained, tmp_path: Path
) -> None:
    """A real MLflow tracking server, told of the receiver as a webhook, delivers the alias
    change; the receiver syncs. Forged and stale deliveries get 401."""
    import signal
    import socket
    import time

    import requests
    from mlflow.webhooks.delivery import _generate_hmac_signature

    from modelyard.tracking import UI_ENVIRONMENT, ui_command

    secret = "webhook-secret"  # noqa: S105 - a test's secret
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow_server = subprocess.Popen(
        ui_command(trained.tracking_uri, tmp_path / "mlruns", host="127.0.0.1", port=port),
        env=release.env | UI_ENVIRONMENT | {
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",  # a local, plain-http receiver
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        },
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    receiver = release.start(
        "bridge", "serve", "--port", "0", "--interval", "0", "--model", release.model,
        MODELYARD_WEBHOOK_SECRET=secret,
    )  # fmt: skip
    try:
        assert receiver.stdout is not None
        url = receiver.stdout.readline().split()[-1]
        health = url.replace("/webhook", "/healthz")
        deadline = time.monotonic() + 300
        while requests.get(health, timeout=10).json()["syncs_done"] < 1:  # its start-up sync
            assert time.monotonic() < deadline, "the receiver's first sync did not finish"
            time.sleep(0.5)
        body = json.dumps(
            {"entity": "model_version_alias", "action": "created",
             "data": {"name": release.model, "alias": "canary", "version": "1"}}
        )  # fmt: skip

        def post(signature: str, stamp: str) -> int:
            headers = {
                "X-MLflow-Signature": signature, "X-MLflow-Timestamp": stamp,
                "X-MLflow-Delivery-Id": "d-1", "Content-Type": "application/json",
            }  # fmt: skip
            return requests.post(url, data=body.encode(), headers=headers, timeout=10).status_code

        now = str(int(time.time()))
        assert post(_generate_hmac_signature("wrong", "d-1", now, body), now) == 401
        stale = str(int(time.time()) - 3600)
        assert post(_generate_hmac_signature(secret, "d-1", stale, body), stale) == 401
        assert active(release) == []

        server = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        while True:
            try:
                server.search_experiments(max_results=1)
                break
            except Exception:
                if time.monotonic() > deadline or mlflow_server.poll() is not None:
                    raise
                time.sleep(0.5)
        hook = server.create_webhook(
            name=f"bridge-{release.model}", url=url, secret=secret,
            events=["model_version_alias.created", "model_version_alias.deleted"],
        )  # fmt: skip
        version = release.new_version()
        server.set_registered_model_alias(release.model, "canary", version)  # as the UI does
        deadline = time.monotonic() + 300
        while not active(release) and time.monotonic() < deadline:
            time.sleep(1)
        (bundle,) = active(release)
        assert bundle["mlflow_model_version"] == version and bundle["bundle_tier"] == "canary"
        (activated,) = [e for e in release.events() if e["event"] == "activated"]
        assert activated["actor"] == "bridge-serve" and activated["details"]["cause"] == "webhook"
        server.delete_webhook(hook.webhook_id)
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
        os.killpg(mlflow_server.pid, signal.SIGTERM)
        mlflow_server.wait(timeout=30)
