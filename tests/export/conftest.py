"""Export fixtures: the paths an export needs, and the export stage run in its own process.
The trained models come from the session plugin ``tests.trained``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from modelyard.export.config import ExportParams, ParityParams
from modelyard.export.run import ExportPaths
from tests.conftest import ENV_KEYS
from tests.trained import ARCHITECTURES, Trained
from tests.training.conftest import ROOT

__all__ = ["ARCHITECTURES", "Trained"]


def export_paths(trained: Trained, arch: str, folder: Path, name: str) -> ExportPaths:
    return ExportPaths(
        model=trained.models[arch],
        samples=trained.samples,
        out=folder / name,
        metrics=folder / f"{name}.json",
    )


# few timed runs; detections matched from a low score up, as these small models are unsure
FAST = ExportParams(latency_runs=3, parity=ParityParams(score_threshold=0.1))


def run_stage(
    trained: Trained, arch: str, fmt: str, folder: Path, params: Path
) -> subprocess.CompletedProcess[str]:
    """``pipelines/export.py`` in its own process, as the DVC stage runs it."""
    paths = export_paths(trained, arch, folder, fmt)
    command = [
        sys.executable, str(ROOT / "pipelines" / "export.py"), "--format", fmt,
        "--model", str(paths.model), "--converted", str(trained.samples.converted),
        "--snapshot", str(trained.samples.snapshot), "--out", str(paths.out),
        "--metrics", str(paths.metrics), "--params", str(params),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["MODELYARD_HOME"] = str(trained.home)
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def params_file(folder: Path, int8_scheme: str = FAST.int8_scheme) -> Path:
    """A params.yaml with FAST's export section, for the stage's own process."""
    path = folder / "params.yaml"
    parity = {"score_threshold": FAST.parity.score_threshold}
    section = {"latency_runs": FAST.latency_runs, "int8_scheme": int8_scheme, "parity": parity}
    path.write_text(yaml.safe_dump({"export": section}), encoding="utf-8")
    return path
