"""Parity's matching and metrics on hand-made detections and outputs (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.export.config import ParityParams, Tolerance
from modelyard.export.parity import (
    combined,
    detection_parity,
    map50,
    tensor_parity,
    value_parity,
)

PARAMS = ParityParams()
TOL = PARAMS.fp32


def dets(*rows: tuple[float, float, float, float, float, int]) -> dict[str, np.ndarray]:
    """Rows of (x1, y1, x2, y2, score, label)."""
    array = np.array(rows, dtype=np.float32).reshape(-1, 6)
    return {"boxes": array[:, :4], "scores": array[:, 4], "labels": array[:, 5].astype(np.int64)}


TRUTH = [{"boxes": np.array([[10, 10, 50, 50]], np.float32), "labels": np.array([0])}]
CAR = (10.0, 10.0, 50.0, 50.0, 0.9, 0)


def check(reference: dict[str, np.ndarray], artifact: dict[str, np.ndarray], tol: Tolerance = TOL):
    return detection_parity(
        [reference], [artifact], names=["a.jpg"], truth=TRUTH, sample=[0], params=PARAMS, tol=tol
    )


def test_identical_detections_pass_in_any_order() -> None:
    other = (60.0, 60.0, 90.0, 90.0, 0.5, 1)
    result = check(dets(CAR, other), dets(other, CAR))
    assert result.passed, result.findings
    assert result.measures["matched_detections"] == 2
    assert result.measures["map50_delta"] == 0


def test_a_shifted_box_fails_naming_the_image_and_the_overlap() -> None:
    shifted = (14.0, 14.0, 54.0, 54.0, 0.9, 0)  # IoU 0.681: a partner, but too far
    result = check(dets(CAR), dets(shifted))
    assert result.status == "failed"
    assert "a.jpg" in result.findings[0] and "box IoU 0.681" in result.findings[0]


def test_a_score_change_beyond_the_tolerance_fails() -> None:
    result = check(dets(CAR), dets((10.0, 10.0, 50.0, 50.0, 0.8, 0)))
    assert result.status == "failed"
    assert "score off by 0.100" in result.findings[0]


def test_a_missing_detection_fails_and_an_extra_one_too() -> None:
    missing = check(dets(CAR), dets())
    assert missing.status == "failed" and "no partner in the artifact" in missing.findings[0]
    extra = check(dets(), dets(CAR))
    assert extra.status == "failed" and "no partner in PyTorch's" in extra.findings[0]


def test_a_detection_of_another_class_is_no_partner() -> None:
    result = check(dets(CAR), dets((10.0, 10.0, 50.0, 50.0, 0.9, 2)))
    assert result.status == "failed"


def test_a_partner_just_under_the_threshold_still_counts() -> None:
    at = (10.0, 10.0, 50.0, 50.0, 0.305, 0)
    below = (10.0, 10.0, 50.0, 50.0, 0.295, 0)  # within the score tolerance of 0.3
    assert check(dets(at), dets(below)).passed


def test_map50_delta_beyond_the_tolerance_fails() -> None:
    wrong_place = (100.0, 100.0, 140.0, 140.0, 0.1, 0)  # under the threshold: only mAP sees it
    result = check(dets((10.0, 10.0, 50.0, 50.0, 0.1, 0)), dets(wrong_place))
    assert result.status == "failed"
    assert "mAP50" in result.findings[-1]
    assert result.measures["map50_pytorch"] == pytest.approx(1.0)
    assert result.measures["map50_artifact"] == pytest.approx(0.0)


def test_map50_scores_a_perfect_prediction_one() -> None:
    assert map50([dets(CAR)], TRUTH) == pytest.approx(1.0)


def test_value_parity_names_the_worst_images_first() -> None:
    reference = np.array([0.1, 0.8, 0.6, 0.3])
    artifact = reference + np.array([0.0, 0.3, 0.0, 0.05])
    truth = [0.0, 1.0, 1.0, 0.0]
    result = value_parity(
        reference, artifact, names=["a", "b", "c", "d"], truth=truth, task="classify", tol=TOL
    )
    assert result.status == "failed"
    assert result.findings[0].startswith("b: output 1.1000 vs PyTorch 0.8000")
    assert result.findings[1].startswith("d:")
    assert result.measures["max_output_delta"] == pytest.approx(0.3)


def test_value_parity_checks_the_metric_of_a_regressor() -> None:
    reference = np.array([1.0, 2.0, 3.0])
    loose = Tolerance(box_iou=0.0, score=1.0, map50=1.0, output=1.0, metric=0.1, tensor=1.0)
    result = value_parity(
        reference, reference + 0.5, names=["a", "b", "c"], truth=[1.0, 2.0, 3.0],
        task="regress", tol=loose,
    )  # fmt: skip
    assert result.status == "failed"
    assert result.measures["mae_delta"] == pytest.approx(0.5)
    assert "mae" in result.findings[0]


def test_identical_outputs_pass() -> None:
    values = np.array([0.2, 0.9])
    result = value_parity(
        values, values.copy(), names=["a", "b"], truth=[0.0, 1.0], task="classify", tol=TOL
    )
    assert result.passed
    assert result.measures["auc_delta"] == 0


def test_raw_tensors_in_another_query_order_pass_and_a_one_percent_change_fails() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 30, 3))
    boxes = rng.random((2, 30, 4))
    order = rng.permutation(30)
    same = tensor_parity(
        [logits, boxes], [logits[:, order], boxes[:, order]], tensors=("logits", "boxes"),
        names=["a.jpg", "b.jpg"], bound=1e-5, query_set=True,
    )  # fmt: skip
    assert same.passed and same.measures["tensor_logits_max_rel_delta"] == 0.0
    changed = boxes.copy()
    changed[1, :, 2] *= 1.01  # one coordinate of every box in one image
    caught = tensor_parity(
        [logits, boxes], [logits, changed], tensors=("logits", "boxes"),
        names=["a.jpg", "b.jpg"], bound=1e-5, query_set=True,
    )  # fmt: skip
    assert not caught.passed and caught.finding_count == 1
    assert caught.findings[0].startswith("b.jpg: tensor boxes off by")


def test_a_small_channel_is_held_to_its_own_scale() -> None:
    """Pixels and probabilities in one tensor (YOLO's, channels on axis 1): a 0.1 % change of
    the class scores is 1e-3 of their own scale, where against the boxes' 640 px it would be
    1.4e-6 and pass."""
    rng = np.random.default_rng(1)
    ref = np.concatenate([rng.random((4, 4, 50)) * 640, rng.random((4, 2, 50)) * 0.9], axis=1)
    art = ref.copy()
    art[:, 4:] *= 1.001
    result = tensor_parity([ref], [art], tensors=("predictions",), names=list("abcd"),
                           bound=1e-5, channel_axis=1)  # fmt: skip
    assert not result.passed
    assert result.measures["tensor_predictions_max_rel_delta"] == pytest.approx(1e-3, rel=0.05)


def test_combined_lists_the_decoded_findings_first() -> None:
    decoded = check(dets(CAR), dets())  # the car has no partner
    tensors = tensor_parity([np.ones((1, 2))], [np.full((1, 2), 2.0)], tensors=("x",),
                            names=["a.jpg"], bound=1e-5)  # fmt: skip
    both = combined(decoded, tensors)
    assert both.finding_count == decoded.finding_count + 1
    assert "no partner" in both.reason and "tensor x" in both.findings[-1]
