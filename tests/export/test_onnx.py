"""ONNX exports of really trained models, checked in onnxruntime against PyTorch; and a
deliberately broken export caught by parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.errors import ParityError
from modelyard.export import formats, source
from modelyard.export import onnx as onnx_backend
from modelyard.export.manifest import sha256_path
from modelyard.export.run import check_artifact, export_format, reference
from tests.export.conftest import ARCHITECTURES, FAST, Trained, export_paths

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class Unscaled(torch.nn.Module):
    """The model fed 0-255 pixels where it was trained on 0-1: a wrong normalisation.

    (The small test detectors barely look at their input, so they are broken another way.)"""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> object:
        return self.network(images * 255.0)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_onnx_artifacts_match_pytorch(trained: Trained, tmp_path: Path, arch: str) -> None:
    paths = export_paths(trained, arch, tmp_path, "onnx")
    manifest = export_format("onnx", FAST, paths)

    assert manifest == json.loads((paths.out / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [1, 3, 64, 64] and manifest["input"]["layout"] == "NCHW"
    fixed, dynamic = manifest["artifacts"]
    for artifact in (fixed, dynamic):
        assert artifact["parity"]["status"] == "passed", artifact["parity"]
        assert artifact["sha256"] == sha256_path(paths.out / artifact["file"])
        assert artifact["inference_time_ms"] > 0
        assert artifact["spec_problems"] == []
    assert fixed["spec"]["inputs"][0]["shape"] == [1, 3, 64, 64]
    assert dynamic["spec"]["inputs"][0]["shape"][0] == "batch"
    metrics = json.loads(paths.metrics.read_text())
    assert metrics["model.onnx"]["parity_passed"] == 1
    if manifest["task"] == "detect":
        assert fixed["parity"]["measures"]["images_scored"] > 0


class Shrunk(torch.nn.Module):
    """RT-DETR's boxes scaled for another input size: a wrong box decoding."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, boxes = self.network(images)
        return logits, boxes * 0.8


def test_a_broken_detector_export_fails_the_stage_loudly(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest_write = onnx_backend.write

    def broken_write(
        model: source.ExportModel, target: Path, *, dynamic_batch: bool = False
    ) -> None:
        broken = source.ExportModel(**{**model.__dict__, "network": Shrunk(model.network)})
        honest_write(broken, target, dynamic_batch=dynamic_batch)

    monkeypatch.setattr(onnx_backend, "write", broken_write)
    paths = export_paths(trained, "rt-detrv2-s", tmp_path, "onnx")
    with pytest.raises(ParityError, match=r"onnx: 2 of 2 artifacts fail parity") as caught:
        export_format("onnx", FAST, paths)

    assert str(paths.out / "parity.json") in str(caught.value)
    report = json.loads((paths.out / "parity.json").read_text())
    first = report["artifacts"][0]
    assert first["status"] == "failed" and first["finding_count"] > 0
    # boxes shrunk by a fifth: too far apart to pair, or paired but overlapping too little
    assert "no partner" in first["findings"][0] or "artifact box IoU" in first["findings"][0]
    assert first["findings"][0].split(": ")[0].endswith(".jpg")  # names the image
    manifest = json.loads((paths.out / "manifest.json").read_text())
    assert {a["parity"]["status"] for a in manifest["artifacts"]} == {"failed"}
    assert json.loads(paths.metrics.read_text())["model.onnx"]["parity_passed"] == 0


def test_wrong_normalisation_of_an_image_head_is_caught_with_its_worst_images(
    trained: Trained, tmp_path: Path
) -> None:
    model = source.load(trained.models["resnet18-binary"])
    ref = reference(model, trained.samples)
    broken = source.ExportModel(**{**model.__dict__, "network": Unscaled(model.network)})
    path = tmp_path / "broken.onnx"
    onnx_backend.write(broken, path)
    fmt = formats.get("onnx")
    entry = check_artifact(fmt, fmt.variants[0], path, ref, FAST)

    assert entry["parity"]["status"] == "failed"
    findings = entry["parity_report"]["findings"]
    assert findings[0].split(":")[0] in ref.test.names
    assert entry["parity"]["measures"]["max_output_delta"] > FAST.parity.fp32.output
    assert np.isfinite(entry["parity"]["measures"]["max_output_delta"])
