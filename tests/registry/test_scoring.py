"""Scoring with a released bundle, end to end: the session's detector promoted by a real
`modelyard promote`, its bundle fetched from the bucket by `modelyard score`, scored through
the SDK's Scorer into the inference history, and binned by `modelyard drift run`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelyard.db import connection
from modelyard.export import decode, onnx
from modelyard.sdk import imaging
from modelyard.sdk.scorer import MIN_SCORE, Scorer
from modelyard.storage import ObjectStore
from tests.registry.conftest import Release

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_score_writes_inferences_the_drift_job_bins(release: Release, tmp_path: Path) -> None:
    version = release.new_version()
    release.cli("promote", release.model, version, "--to", "canary")
    cache = tmp_path / "scoring"
    done = release.cli("score", "--bundle", "demo-policy/canary", "--dataset", "demo",
                       "--split", "test", "--cache", str(cache), "--json")  # fmt: skip
    summary = json.loads(done.stdout)
    tests = release.rows("SELECT count(*) AS n FROM verify_ai_ml_samples WHERE split = 'test'")
    assert summary["scored"] == tests[0]["n"] > 0 and summary["skipped"] == []
    assert summary["bundle"] == "demo-policy/v1"
    rows = release.rows("SELECT * FROM verify_ai_inferences ORDER BY id")
    assert len(rows) == summary["scored"]
    assert all(r["sample_id"] is not None and r["model_version"] == "demo-policy/v1" for r in rows)
    for r in rows:  # a decision is the calibrated top score against the shipped threshold
        assert r["decision"] == (r["score"] >= r["threshold"] == 0.5)
        assert r["detections"] == len(r["scores"]) == len(r["outputs"]["boxes"])
    latest = release.rows("SELECT * FROM verify_ai_image_scores")
    assert {r["image_sha256"] for r in latest} == {r["image_sha256"] for r in rows}

    # The same numbers as the export's own (PyTorch) decoder on the same ONNX outputs.
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    scorer = Scorer(folder)
    spec = scorer.spec
    runner = onnx.open_runtime(scorer.model_file, spec["outputs"], 1)
    store = ObjectStore(str(release.store))
    for r in rows[:5]:
        image = Image.open(io.BytesIO(store.get_blob(r["image_sha256"].strip())))
        (ours,) = scorer.score([image])
        outputs = runner(imaging.pixels(image, spec["input"])[None])
        (theirs,) = decode.detections(decode.family(spec["architecture"]), outputs,
                                      np.array([[image.height, image.width]], np.float32),
                                      spec["input"]["shape"][-1])  # fmt: skip
        keep = theirs["scores"] >= MIN_SCORE
        assert ours.detections == int(keep.sum()) == r["detections"]
        got = np.array([b.raw_score for b in ours.boxes])
        np.testing.assert_allclose(np.sort(got), np.sort(theirs["scores"][keep]), atol=1e-5)
        boxes = np.array([b.xyxy for b in ours.boxes]).reshape(-1, 4)
        np.testing.assert_allclose(boxes[np.argsort(-got)],
                                   theirs["boxes"][keep][np.argsort(-theirs["scores"][keep])],
                                   atol=1e-3)  # fmt: skip

    # The day's drift window counts the inferences beside (here: instead of) telemetry.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    release.cli("drift", "run", "--window", "1d", "--at", tomorrow)
    with connection.connect(release.url) as conn:
        (live,) = conn.execute(
            "SELECT * FROM verify_ai_model_reference_stats WHERE snapshot_type = 'live'"
        ).fetchall()
    assert live["stats"]["inferences"] == len(rows) == live["sample_count"]
    features = live["stats"]["features"]
    assert features["brightness"]["n"] == len(rows)
    assert features["detections_per_image"]["n"] == len(rows)
    assert features["score"]["n"] == sum(len(r["scores"]) for r in rows)


def test_a_bad_image_is_reported_and_the_rest_scored(release: Release, tmp_path: Path) -> None:
    version = release.new_version()
    release.cli("promote", release.model, version, "--to", "canary")
    images = tmp_path / "images"
    (images / "night").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / "night" / f"{i}.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (images / "notes.txt").write_text("not an image, not looked at")
    done = release.cli("score", "--bundle", "demo-policy/canary", "--images", str(images),
                       "--cache", str(tmp_path / "scoring"), "--json")  # fmt: skip
    summary = json.loads(done.stdout)
    assert summary["scored"] == 3
    (skipped,) = summary["skipped"]
    assert skipped["source"].endswith("broken.jpg") and "PIL" in skipped["reason"]
    rows = release.rows("SELECT source, sample_id FROM verify_ai_inferences")
    assert sorted(Path(r["source"]).name for r in rows) == ["0.png", "1.png", "2.png"]
    assert all(r["sample_id"] is None for r in rows)
    again = release.cli("score", "--bundle", "demo-policy/production", "--images", str(images),
                        check=False)  # fmt: skip
    assert again.returncode != 0 and "no active production bundle" in again.stderr + again.stdout


def test_a_review_cycle_judges_a_version_against_labels_and_the_last(
    release: Release, tmp_path: Path
) -> None:
    release.cli("promote", release.model, release.new_version(), "--to", "canary")
    cache = str(tmp_path / "scoring")
    release.cli("score", "--bundle", "demo-policy/canary", "--dataset", "demo", "--split", "test",
                "--cache", cache)  # fmt: skip
    # The same day, three times as many darkened copies come in from the field (no labels):
    # against a reference of so few images only a shift this large is past the bound.
    store = ObjectStore(str(release.store))
    field = tmp_path / "field"
    field.mkdir()
    tests = release.rows("SELECT image_path, image_sha256 FROM verify_ai_ml_samples "
                         "WHERE split = 'test' ORDER BY image_path")  # fmt: skip
    for i, t in enumerate(tests):
        image = Image.open(io.BytesIO(store.get_blob(t["image_sha256"].strip()))).convert("RGB")
        for k, factor in enumerate((0.15, 0.2, 0.25)):
            dark = (np.asarray(image, dtype=np.float32) * factor).astype(np.uint8)
            Image.fromarray(dark).save(field / f"{i:03d}-{k}.png")
    release.cli("score", "--bundle", "demo-policy/canary", "--images", str(field), "--cache", cache)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    release.cli("drift", "run", "--window", "1d", "--at", tomorrow, "--windows", "2")
    quiet, live = release.rows("SELECT stats FROM verify_ai_model_reference_stats "
                               "WHERE snapshot_type = 'live' ORDER BY window_start")  # fmt: skip
    assert quiet["stats"]["state"] == "insufficient"  # yesterday: nothing scored
    assert live["stats"]["state"] == "alarm"

    reports = tmp_path / "reports"
    release.cli("review", "cycle", "--bundle", "demo-policy/v1", "--top", "5", "--near", "3",
                "--drifted", "4", "--out", str(reports))  # fmt: skip
    report = json.loads((reports / "review_cycle_demo-policy_v1.json").read_text())
    assert report["labelled"] == report["scored_samples"] == len(tests)
    assert report["against"] is None  # the policy's first cycle
    rate = report["metrics"]["disagreement_rate"]
    assert rate["n"] == len(tests) and 0 <= rate["value"] <= 1 and rate["se"] is not None
    assert [w["state"] for w in report["drift"]] == ["insufficient", "alarm"]
    assert {s["key"] for s in report["slices"]} >= {"phase", "split", "captured_day"}
    with (reports / "review_cycle_demo-policy_v1" / "review.csv").open() as handle:
        listed = list(csv.DictReader(handle))
    reasons = [r["reason"] for r in listed]
    assert reasons.count("drifted") == 4 and reasons.count("disagreement") <= 5
    assert any(r["image_path"].startswith(str(field)) for r in listed if r["reason"] == "drifted")
    disagreements = [r for r in listed if r["reason"] == "disagreement"]
    stored = release.rows("SELECT image_path, annotations FROM verify_ai_ml_samples")
    labels = {t["image_path"]: t for t in stored}
    for r in disagreements:  # each names its sample's labelled boxes as they are stored
        assert json.loads(r["label"]) == labels[r["image_path"]]["annotations"]["objects"]
    markdown = (reports / "review_cycle_demo-policy_v1.md").read_text()
    assert "# Review cycle: demo-policy/v1" in markdown and "First cycle" in markdown
    for figure in report["figures"]:
        assert (reports / figure).stat().st_size > 1000

    # A worked row goes back into the data as a new dataset version.
    assert disagreements, "a random-init detector disagrees with some labels"
    target = disagreements[0]
    for r in listed:
        if r is target:
            r["corrected_label"] = "[]"
    worked = tmp_path / "worked.csv"
    with worked.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(listed[0]))
        writer.writeheader()
        writer.writerows(listed)
    release.cli("review", "apply", str(worked), "--dataset", "demo", "--name", "demo-cycle-1")
    (fixed,) = release.rows(
        "SELECT s.annotations FROM verify_ai_ml_samples s JOIN verify_ai_ml_datasets d "
        "ON d.id = s.dataset_id WHERE d.name = 'demo-cycle-1' AND s.image_path = %s",
        (target["image_path"],),
    )
    assert fixed["annotations"]["objects"] == []

    # The next version (the same weights here) is compared with the last: unchanged.
    release.cli("promote", release.model, release.new_version(), "--to", "canary")
    release.cli("score", "--bundle", "demo-policy/v2", "--dataset", "demo", "--split", "test",
                "--cache", cache)  # fmt: skip
    done = release.cli("review", "cycle", "--bundle", "demo-policy/v2", "--out", str(reports))
    second = json.loads((reports / "review_cycle_demo-policy_v2.json").read_text())
    assert second["against"]["model_version"] == "demo-policy/v1"
    assert second["against"]["verdict"] == "unchanged"
    assert second["metrics"]["disagreement_rate"] == report["metrics"]["disagreement_rate"]
    assert "against demo-policy/v1: unchanged" in done.stdout
    cycles = release.rows("SELECT model_version FROM verify_ai_review_cycles ORDER BY id")
    assert [c["model_version"] for c in cycles] == ["demo-policy/v1", "demo-policy/v2"]
