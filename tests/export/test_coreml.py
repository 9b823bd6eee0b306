"""CoreML packages of really trained models, exported by the stage's script in a process of
its own. Off macOS the spec is what is checked; numeric parity must say skipped, with why."""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pytest

from tests.export.conftest import ARCHITECTURES, Trained, params_file, run_stage

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_coreml_spec_is_checked_and_parity_is_skipped_not_passed(
    trained: Trained, tmp_path: Path, arch: str
) -> None:
    done = run_stage(trained, arch, "coreml", tmp_path, params_file(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]

    manifest = json.loads((tmp_path / "coreml" / "manifest.json").read_text())
    (artifact,) = manifest["artifacts"]
    package = tmp_path / "coreml" / artifact["file"]
    assert package.is_file() and package.name == "model.mlpackage.zip"  # one file to ship
    assert artifact["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
    assert names == sorted(names) and all(n.startswith("model.mlpackage/") for n in names)
    spec = artifact["spec"]
    assert spec["model_type"] == "mlProgram"
    assert spec["inputs"] == [{"name": "images", "shape": [1, 3, 64, 64], "dtype": "float32"}]
    assert [o["name"] for o in spec["outputs"]] == manifest["outputs"]
    assert spec["classes"] == manifest["classes"]
    assert artifact["spec_problems"] == []
    if sys.platform != "darwin":
        assert artifact["parity"]["status"] == "skipped"
        assert "macOS" in artifact["parity"]["reason"]
        assert artifact["inference_time_ms"] is None
        metrics = json.loads((tmp_path / "coreml.json").read_text())
        assert metrics["model.mlpackage.zip"]["parity_passed"] is None
