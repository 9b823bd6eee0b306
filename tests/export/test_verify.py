"""`modelyard export verify`: the artifacts already exported, checked again in their runtime
(the same bytes, nothing re-exported); off macOS a CoreML package stays unverified, and
registration records it so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.errors import IntegrityError
from modelyard.export.run import export_format, verify_format
from modelyard.registry.register import verification
from tests.conftest import ENV_KEYS, MODELYARD
from tests.export.conftest import FAST, Trained, export_paths, params_file, run_stage
from tests.training.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ARCH = "resnet18-binary"


def test_verify_rechecks_the_exported_bytes_and_refuses_changed_ones(
    trained: Trained, tmp_path: Path
) -> None:
    paths = export_paths(trained, ARCH, tmp_path, "onnx")
    exported = export_format("onnx", FAST, paths)
    checked = verify_format("onnx", FAST, paths)
    assert [a["sha256"] for a in checked["artifacts"]] == [
        a["sha256"] for a in exported["artifacts"]
    ]
    assert {a["parity"]["status"] for a in checked["artifacts"]} == {"passed"}
    assert json.loads((paths.out / "manifest.json").read_text()) == checked
    with (paths.out / "model.onnx").open("ab") as changed:
        changed.write(b"\0")
    with pytest.raises(IntegrityError, match="its sha256 is not the manifest's"):
        verify_format("onnx", FAST, paths)


def test_off_macos_a_verified_coreml_stays_skipped_and_unverified(
    trained: Trained, tmp_path: Path
) -> None:
    params = params_file(tmp_path)
    assert run_stage(trained, ARCH, "coreml", tmp_path, params).returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["MODELYARD_HOME"] = str(trained.home)
    command = [
        *MODELYARD, "export", "verify", "--format", "coreml", "--params", str(params),
        "--model", str(trained.models[ARCH]), "--converted", str(trained.samples.converted),
        "--snapshot", str(trained.samples.snapshot), "--out", str(tmp_path / "coreml"),
        "--metrics", str(tmp_path / "coreml.json"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (artifact,) = json.loads((tmp_path / "coreml" / "manifest.json").read_text())["artifacts"]
    recorded = verification("coreml", artifact["parity"])
    if sys.platform == "darwin":
        assert recorded["verified"] is True
    else:
        assert artifact["parity"]["status"] == "skipped"
        assert recorded["verified"] is False and "macOS" in recorded["verification"]
