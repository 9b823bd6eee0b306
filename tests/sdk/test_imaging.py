"""The SDK's numpy decoders against the export's PyTorch ones (what parity and the gates
were measured with), on raw outputs shaped as each detector family gives them."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.export import decode
from modelyard.sdk import imaging


def _yolo_raw(rng: np.random.Generator, anchors: int, classes: int) -> np.ndarray:
    """(1, 4 + classes, anchors): clustered boxes (so NMS has work) and sparse class scores."""
    centres = rng.uniform(20, 108, (8, 2))
    pick = rng.integers(0, 8, anchors)
    cxcy = centres[pick] + rng.normal(0, 3, (anchors, 2))
    wh = rng.uniform(10, 40, (anchors, 2))
    scores = rng.beta(0.3, 3, (anchors, classes))
    return np.concatenate([cxcy.T, wh.T, scores.T]).astype(np.float32)[None]


@pytest.mark.parametrize("seed", range(5))
def test_yolo_matches_the_export_decoder(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = _yolo_raw(rng, anchors=336, classes=3)
    size = (96, 160)
    (theirs,) = decode.detections("yolo", [raw], np.array([size], np.float32), 128)
    ours = imaging.yolo(raw[0], size, 128)
    assert len(ours["scores"]) == len(theirs["scores"]) > 10
    np.testing.assert_allclose(ours["scores"], theirs["scores"], rtol=1e-6)
    np.testing.assert_array_equal(ours["labels"], theirs["labels"])
    np.testing.assert_allclose(ours["boxes"], theirs["boxes"], atol=1e-3)


def test_rtdetr_matches_the_export_decoder() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(-2, 1.5, (1, 300, 3)).astype(np.float32)
    boxes = rng.uniform(0.1, 0.9, (1, 300, 4)).astype(np.float32)
    size = (120, 200)
    (theirs,) = decode.detections("rtdetr", [logits, boxes], np.array([size], np.float32), 128)
    ours = imaging.rtdetr(logits[0], boxes[0], size)
    np.testing.assert_allclose(ours["scores"], theirs["scores"], rtol=1e-5)
    np.testing.assert_array_equal(ours["labels"], theirs["labels"])
    np.testing.assert_allclose(ours["boxes"], theirs["boxes"], atol=1e-3)


def test_calibration_applies_per_class_tables_and_the_default() -> None:
    table = {"default": {"x": [0, 1], "y": [0, 0.5]},
             "per_class": {"person": {"x": [0, 1], "y": [0, 1]}}}  # fmt: skip
    out = imaging.calibrate(table, np.array([0.8, 0.8, 0.4]), np.array([0, 1, 1]),
                            ["car", "person"])  # fmt: skip
    np.testing.assert_allclose(out, [0.4, 0.8, 0.4])
    np.testing.assert_allclose(imaging.calibrate(None, np.array([0.3]), np.array([0]), []), [0.3])
