"""The group ranker: its metrics and baselines against hand-computed values, group-disjoint
splits enforced, and the whole user path (demo data -> ingest -> split -> embed -> ranker
train -> crop train -> summary -> promoted through the bridge to a device) beating both
baselines, then failing its gate when the stage decides the choice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import StateError
from modelyard.selection import data, ranker
from modelyard.selection.data import Shot
from tests.conftest import MODELYARD
from tests.serving.fleet import free_port

ROOT = Path(__file__).resolve().parents[2]


def shot(
    group: str, i: int, action: str = "reject", stage: int | None = 1, split: str = "train"
) -> Shot:
    return Shot(
        sample_id=f"{group}-{i}",
        sha256=f"{group}{i}",
        file=f"{group}_{i}.jpg",
        group=group,
        project="p",
        split=split,
        action=action,
        stage=stage,
        crop=None,
    )


def test_ranking_metrics_by_hand() -> None:
    groups = [np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.8, 0.1, 0.0]), np.array([0.3, 0.3])]
    kept = [0, 2, 1]  # rank 1; rank 3; a tie counts against the kept photo: rank 2
    m = ranker.ranking_metrics(groups, kept)
    assert m["selection_accuracy"] == pytest.approx(1 / 3)
    assert m["ndcg3"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(3)) / 3)


def test_random_baseline_is_the_exact_expectation() -> None:
    m = ranker.random_baseline([2, 4])
    assert m["selection_accuracy"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    g = [1, 1 / np.log2(3), 1 / np.log2(4)]
    assert m["ndcg3"] == pytest.approx(((g[0] + g[1]) / 2 + sum(g) / 4) / 2)


def test_stage_baseline_breaks_ties_at_random() -> None:
    alone = [shot("a", 0, "approve", 4), shot("a", 1, stage=2), shot("a", 2, stage=1)]
    tied = [shot("b", 0, "crop", 3), shot("b", 1, stage=3), shot("b", 2, stage=1)]
    below = [shot("c", 0, "approve", 1), shot("c", 1, stage=2), shot("c", 2, stage=3)]
    m = ranker.stage_baseline([alone, tied, below])
    assert m["selection_accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["ndcg3"] == pytest.approx((1 + (1 + 1 / np.log2(3)) / 2 + 1 / np.log2(4)) / 3)


def test_a_group_in_two_splits_and_unrankable_groups() -> None:
    shots = [shot("a", 0, "approve"), shot("a", 1, split="test")]
    with pytest.raises(StateError, match="group a sits in"):
        data._check_group_disjoint(shots, "ds")
    mixed = [
        shot("a", 0, "approve"),
        shot("a", 1),
        shot("b", 0),
        shot("b", 1),
        shot("c", 0, "approve"),
    ]
    assert [g[0].group for g in data.groups(mixed)] == ["a"]
    assert data.unrankable(mixed) == ["b", "c"]


def test_the_network_scores_a_burst_against_itself() -> None:
    # the same photo scores differently in a burst of sharper or blurrier ones
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    groups = [list(range(i, i + 3)) for i in range(0, 30, 3)]
    kept = [g[int(np.argmax(x[g, 0]))] for g in groups]
    network = ranker.train(x, groups, kept, ranker.RankerParams(epochs=100, hidden=(8,)))
    burst = x[:3]
    alone = ranker.scores(network, burst)
    shifted = ranker.scores(network, np.concatenate([burst, burst + 3.0]))[:3]
    assert not np.allclose(alone, shifted)
    metrics = ranker.ranking_metrics(
        ranker.score_groups(network, x, groups),
        [k - g[0] for k, g in zip(kept, groups, strict=True)],
    )
    assert metrics["selection_accuracy"] == 1.0


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODELYARD, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def _train(env: dict[str, str], cwd: Path, *demo_args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    for args in (
        ("selection", "demo-data", "--out", "sel", *demo_args),
        ("dataset", "create", "--policy", "photo-lab", "--name", "bursts", "--classes", "keep"),
        (
            "ingest",
            "sqlite-decisions",
            "sel/decisions.db",
            "--dataset",
            "photo-lab/bursts",
            "--images-dir",
            "sel/images",
        ),
        ("dataset", "split", "photo-lab/bursts", "--ratios", "0.6,0.2,0.2", "--seed", "0"),
        ("embed", "--dataset", "photo-lab/bursts", "--params", str(ROOT / "params.yaml")),
    ):
        done = _run(env, cwd, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    result = _run(
        env,
        cwd,
        "ranker",
        "train",
        "--dataset",
        "photo-lab/bursts",
        "--params",
        str(ROOT / "params.yaml"),
        "--gates",
        str(ROOT / "acceptance_gates.yaml"),
    )
    metadata = json.loads((cwd / "models" / "selection" / "ranker_metadata.json").read_text())
    return result.returncode, metadata, result.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_the_ranker_beats_both_baselines_on_the_demo_data(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, metadata, stdout = _train(cli_env, tmp_path)
    assert code == 0, stdout
    test = metadata["metrics"]["test"]
    baselines = metadata["baselines"]["test"]
    assert test["selection_accuracy"] >= baselines["highest_stage"]["selection_accuracy"] + 0.05
    assert test["selection_accuracy"] >= baselines["random"]["selection_accuracy"] + 0.2
    assert metadata["gate"]["status"] == "PASS"
    sizes = metadata["sizes"]
    assert sum(s["groups"] for s in sizes.values()) == 200 - len(metadata["unrankable_groups"])
    assert metadata["onnx"]["parity"]["max_abs_diff"] < 1e-3
    assert metadata["mlflow_run_id"] and len(metadata["data_hash"]) == 64
    assert "test        highest_stage" in stdout
    assert "registered selection-ranker version 1 (candidate)" in stdout
    # the crop proposer, on the same dataset's cropped photos
    done = _run(
        cli_env,
        tmp_path,
        "crop",
        "train",
        "--dataset",
        "photo-lab/bursts",
        "--params",
        str(ROOT / "params.yaml"),
        "--gates",
        str(ROOT / "acceptance_gates.yaml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    crop = json.loads((tmp_path / "models" / "selection" / "crop_metadata.json").read_text())
    iou = crop["metrics"]["test"]["mean_iou"]
    for baseline in crop["baselines"]["test"].values():
        assert iou >= baseline["mean_iou"] + 0.1
    assert crop["gate"]["status"] == "PASS" and crop["onnx"]["parity"]["max_abs_diff"] < 1e-4
    assert set(crop["by_stage"]["test"]["proposer"]) <= {"1", "2", "3", "4"}
    assert sum(crop["crops"].values()) == sum(s["crops"] for s in sizes.values())
    assert "registered selection-crop version 1 (candidate)" in done.stdout
    # the daily summary, from what the steps left
    summary = _run(cli_env, tmp_path, "selection", "summary")
    assert summary.returncode == 0, summary.stdout + summary.stderr
    text = next((tmp_path / "reports" / "daily_summaries").glob("20*.md")).read_text()
    acc = test["selection_accuracy"]
    assert f"| test | ranker | {acc:.3f} |" in text
    assert f"| test | proposer | {iou:.3f} |" in text
    assert "Not run: `modelyard selection inspect DB` first." in text  # no inspection here
    _bundle_both(cli_env, tmp_path)


def _bundle_both(env: dict[str, str], cwd: Path) -> None:
    """Both registered versions through the bridge: each bundled with its reference measured on
    the test photos; the ranker activated and served to a linux device; the crop proposer
    refused the same tier (one bundle per policy and tier)."""
    asts = str(ROOT / "config" / "policy_asts")
    assert _run(env, cwd, "keys", "signing", "init").returncode == 0
    promote = (
        "promote",
        "--to",
        "canary",
        "--weight",
        "100",
        "--actor",
        "t",
        "--policy-asts",
        asts,
    )
    ranked = _run(env, cwd, *promote[:1], "selection-ranker", "candidate", *promote[1:])
    assert ranked.returncode == 0, ranked.stdout + ranked.stderr
    assert "photo-lab/v1: reference statistics on 180 images" in ranked.stdout
    assert "photo-lab/v1: activated canary weight 100" in ranked.stdout
    cropped = _run(env, cwd, *promote[:1], "selection-crop", "candidate", *promote[1:])
    assert cropped.returncode == 4, cropped.stdout + cropped.stderr
    assert "photo-lab/v2: reference statistics on 180 images" in cropped.stdout
    assert "both selection-ranker v1 and selection-crop v1 hold it" in cropped.stdout
    shown = _run(env, cwd, "bundles", "show", "photo-lab/v2")
    assert "box_width" in shown.stdout and "onnx/crop.onnx" in shown.stdout, shown.stdout
    key = cwd / "lab.key"
    made = _run(env, cwd, "keys", "create", "--customer", "cus_lab", "--save", str(key))
    assert made.returncode == 0, made.stderr
    port = free_port()
    devices = _run(
        env, cwd, "device", "simulate", "--policy", "photo-lab", "--api-key", f"cus_lab=@{key}",
        "--devices", "3", "--base-url", f"http://127.0.0.1:{port}", "--start-server", "--json",
    )  # fmt: skip
    assert devices.returncode == 0, devices.stdout + devices.stderr
    by_platform = {
        d["platform"]: d for d in json.loads(devices.stdout[devices.stdout.index("[") :])
    }
    linux = by_platform["linux"]
    assert (linux["tier"], linux["bundle_version"], linux["telemetry"]) == ("canary", 1, "created")
    assert linux["files_verified"] == 2  # the ONNX and its manifest, each sha256 checked
    assert "has no coreml artifact; it has onnx" in by_platform["ios"]["error"]


@pytest.mark.slow
@pytest.mark.postgres
def test_when_the_stage_decides_the_ranker_cannot_beat_it_and_the_gate_fails(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, metadata, stdout = _train(cli_env, tmp_path, "--stage-decisive")
    assert code == 2, stdout
    assert metadata["baselines"]["test"]["highest_stage"]["selection_accuracy"] == 1.0
    assert metadata["gate"]["status"] == "FAIL"
    assert any("does not beat 'always the highest stage'" in r for r in metadata["gate"]["reasons"])
    assert "gate rank: FAIL" in stdout
    assert "registered" not in stdout
