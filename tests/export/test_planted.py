"""A quietly altered model fails parity: the largest output-side convolution of a true export
scaled by 1 % and by 3 % after export (tests/export/planted.py), on ONNX (RT-DETRv2, in this
process) and on TFLite fp32 (YOLO, in a process of its own for TensorFlow). The decoded
detections barely move; the raw tensors do, and the failure names the artifact and the
tensor. The true export beside them passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.export import formats, source
from modelyard.export import onnx as onnx_backend
from modelyard.export.run import check_artifact, reference
from tests.conftest import ENV_KEYS
from tests.export.conftest import FAST, Trained
from tests.export.planted import plant_onnx
from tests.training.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SCALES = (1.01, 1.03)


def test_a_scaled_convolution_fails_onnx_parity_naming_the_tensor(
    trained: Trained, tmp_path: Path
) -> None:
    model = source.load(trained.models["rt-detrv2-s"])
    ref = reference(model, trained.samples)
    fmt = formats.get("onnx")
    true = tmp_path / "model.onnx"
    onnx_backend.write(model, true)
    honest = check_artifact(fmt, fmt.variants[0], true, ref, FAST)
    assert honest["parity"]["status"] == "passed", honest["parity"]
    for scale in SCALES:
        planted = tmp_path / f"planted_{scale}.onnx"
        shutil.copyfile(true, planted)
        plant_onnx(planted, scale)
        entry = check_artifact(fmt, fmt.variants[0], planted, ref, FAST)
        parity = entry["parity"]
        assert entry["file"] == planted.name
        assert parity["status"] == "failed", (scale, parity)
        assert "tensor logits" in parity["reason"] or "tensor boxes" in parity["reason"]
        worst = max(parity["measures"]["tensor_logits_max_rel_delta"],
                    parity["measures"]["tensor_boxes_max_rel_delta"])  # fmt: skip
        assert worst > FAST.parity.fp32.tensor
        # the decoded detections alone would have let it through
        assert parity["measures"]["worst_box_iou"] >= FAST.parity.fp32.box_iou


def test_a_scaled_convolution_fails_tflite_fp32_parity_naming_the_tensor(
    trained: Trained, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["MODELYARD_HOME"] = str(trained.home)
    command = [
        sys.executable, "-m", "tests.export.planted", "--format", "tflite",
        "--precision", "fp32", "--scale", "1", *(a for s in SCALES for a in ("--scale", str(s))),
        "--model", str(trained.models["yolo11n"]), "--converted", str(trained.samples.converted),
        "--snapshot", str(trained.samples.snapshot), "--out", str(tmp_path / "tflite"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_scale = {line["scale"]: line for line in lines}
    assert by_scale[1.0]["status"] == "passed", by_scale[1.0]
    for scale in SCALES:
        line = by_scale[scale]
        assert line["file"] == f"planted_{scale}_model_fp32.tflite"
        assert line["status"] == "failed", line
        assert "tensor predictions off by" in line["reason"]
        assert line["measures"]["worst_box_iou"] >= FAST.parity.fp32.box_iou
