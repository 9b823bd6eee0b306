"""Registry fixtures: a trained model of the session exported, evaluated and gated in a
folder, ready to register; the RegisterInputs that point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelyard import stages
from modelyard.files import write_json
from modelyard.registry.register import RegisterInputs
from tests.evaluation.conftest import exported_and_evaluated
from tests.trained import Trained

ARCH = "yolo11n"
PARAMS = {"base": {"seed": 0, "policy_id": "demo-policy", "dataset": "demo"}}


def evaluate_into(trained: Trained, folder: Path) -> Path:
    """``ARCH`` exported to ONNX and evaluated into ``folder``, with its train report."""
    result = exported_and_evaluated(trained, ARCH, folder)
    write_json(folder / "evaluate" / stages.EVALUATION, result.report)
    assert result.calibration is not None
    write_json(folder / "evaluate" / stages.CALIBRATION, result.calibration.as_dict())
    write_json(
        folder / "train.json", {"mlflow_run_id": trained.runs[ARCH], "job_id": trained.jobs[ARCH]}
    )
    return folder


def gate(trained: Trained, folder: Path, min_map50: float) -> dict[str, Any]:
    """The gate stage over ``folder`` with one bound on mAP50 (0.999 fails, 0 passes)."""
    gates_file = folder / "gates.yaml"
    gates_file.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "detect": {"overall": {"map50": {"min": min_map50}}, "parity": {"onnx": 0.01}},
            }
        )
    )
    paths = stages.GatePaths(
        evaluation=folder / "evaluate",
        gates=gates_file,
        train_report=folder / "train.json",
        snapshot=trained.samples.snapshot / "snapshot.json",
        report=folder / "gate.json",
        card=folder / "model_card.md",
    )
    return stages.gate(PARAMS, paths, ["gate"])


def register_inputs(trained: Trained, folder: Path) -> RegisterInputs:
    return RegisterInputs(
        model=trained.models[ARCH],
        exports=folder / "export",
        evaluation=folder / "evaluate",
        gate_report=folder / "gate.json",
        card=folder / "model_card.md",
        train_report=folder / "train.json",
        snapshot=trained.samples.snapshot / "snapshot.json",
    )
