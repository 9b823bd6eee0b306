"""pipelines/gate.py as DVC runs it: exit 0 if and only if every gate passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelyard.evaluation import model_card
from tests.conftest import ENV_KEYS
from tests.evaluation.test_gates import evaluation

ROOT = Path(__file__).resolve().parents[2]


def run_gate(folder: Path, map50: float) -> subprocess.CompletedProcess[str]:
    (folder / "evaluate").mkdir(exist_ok=True)
    (folder / "evaluate" / "evaluation.json").write_text(json.dumps(evaluation(map50=map50)))
    (folder / "evaluate" / "calibration.json").write_text("{}")
    (folder / "train.json").write_text("{}")  # no MLflow run: nothing is logged
    (folder / "snapshot").mkdir(exist_ok=True)
    snapshot = {"dataset": {"id": "d1", "name": "demo"}, "content_hash": "c" * 64}
    (folder / "snapshot" / "snapshot.json").write_text(json.dumps(snapshot))
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump({"base": {"seed": 0, "policy_id": "p", "dataset": "demo"}}))
    command = [
        sys.executable,
        str(ROOT / "pipelines" / "gate.py"),
        "--params",
        str(params),
        "--evaluation",
        str(folder / "evaluate"),
        "--gates",
        str(ROOT / "acceptance_gates.yaml"),
        "--train-report",
        str(folder / "train.json"),
        "--snapshot",
        str(folder / "snapshot"),
        "--report",
        str(folder / "gate.json"),
        "--card",
        str(folder / "model_card.md"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, check=False)


@pytest.mark.parametrize(("map50", "code"), [(0.8, 0), (0.4, 1)])
def test_exit_status_follows_the_verdict(tmp_path: Path, map50: float, code: int) -> None:
    done = run_gate(tmp_path, map50)
    assert done.returncode == code, done.stderr[-2000:]
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["status"] == ("PASS" if code == 0 else "FAIL")
    status = model_card.status((tmp_path / "model_card.md").read_text())
    if code:
        assert "gate failed: pytorch map50 0.4 (needs >= 0.6)" in done.stderr
        assert status.startswith("Proposed (gate-failed: pytorch map50 0.4 (needs >= 0.6)")
    else:
        assert status == "Production-ready (all gates cleared)"
