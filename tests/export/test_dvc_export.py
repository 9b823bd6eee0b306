"""The ``export`` matrix stage as DVC runs it: one process per format, the real params.yaml,
`dvc metrics show` over what it writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENV_KEYS
from tests.export.conftest import Trained
from tests.training.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_dvc_runs_the_export_matrix_one_format_a_stage(trained: Trained, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, work / name)
    for name in ("pipelines", "src"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(trained.models["rt-detrv2-s"], work / "models" / "train")
    shutil.copytree(trained.samples.converted, work / "data" / "converted")
    shutil.copytree(trained.samples.converted.parent / "images", work / "data" / "images")
    shutil.copytree(trained.samples.snapshot, work / "data" / "snapshot")
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(
        MODELYARD_HOME=str(trained.home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
    )
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=work, env=env, check=True)

    listed = subprocess.run(
        [*dvc, "stage", "list", "--name-only"], cwd=work, env=env, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert {"export@onnx", "export@tflite", "export@coreml"} <= set(listed)

    done = subprocess.run(
        [*dvc, "repro", "--single-item", "export@onnx", "export@coreml"],
        cwd=work, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    for fmt in ("onnx", "coreml"):
        manifest = json.loads((work / "models" / "export" / fmt / "manifest.json").read_text())
        assert manifest["architecture"] == "rt-detrv2-s"
    shown = subprocess.run(
        [*dvc, "metrics", "show", "--json"], cwd=work, env=env, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    metrics = json.loads(shown)[""]["data"]["reports/export/onnx.json"]["data"]
    assert metrics["model.onnx"]["parity_passed"] == 1
