"""Evaluation fixtures: a trained model of the session, exported to ONNX, evaluated."""

from __future__ import annotations

from pathlib import Path

from modelyard.evaluation.config import CalibrationParams, EvaluateParams
from modelyard.evaluation.run import EvaluatePaths, Evaluation, evaluate
from modelyard.export.run import export_format
from tests.export.conftest import FAST, export_paths
from tests.trained import Trained

# the demo's test slices hold 6-23 images: flag nothing below 3; these briefly trained models
# score low, so calibrate from a low score up
PARAMS = EvaluateParams(
    min_slice_samples=3,
    group_key="group_key",
    calibration=CalibrationParams(min_score=0.001, min_per_class=30),
)


def exported_and_evaluated(trained: Trained, arch: str, folder: Path) -> Evaluation:
    export_format("onnx", FAST, export_paths(trained, arch, folder / "export", "onnx"))
    paths = EvaluatePaths(
        model=trained.models[arch], samples=trained.samples, exports=folder / "export"
    )
    return evaluate(PARAMS, paths)
