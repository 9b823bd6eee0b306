"""Label-free accuracy estimates: with calibrated scores, the estimate from binned counts
lands on the precision measured with the outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.monitoring import estimates
from modelyard.monitoring.reference import histogram


def _reference(scores: np.ndarray) -> dict:
    return {"task": "detect", "calibrated": True, "threshold": 0.5,
            "histograms": {"score": histogram("score", scores)}}  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_expected_precision_matches_the_measured_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 2, 20_000)  # calibrated: each is right with that probability
    right = rng.random(len(scores)) < scores
    measured = right[scores >= 0.5].mean()
    counts = histogram("score", scores)["counts"]
    gold = {"pytorch": {"precision": 0.7}}
    live = {"score": dict(enumerate(counts))}
    e = estimates.estimate("detect", _reference(rng.beta(2, 2, 5_000)), live, gold)
    assert e is not None and e["metric"] == "expected_precision"
    assert e["window"] == pytest.approx(measured, abs=0.025 + 3 * 0.005)
    assert e["window_n"] == int((scores >= 0.5).sum())
    assert abs(e["change"]) < 0.01  # the same distribution as the reference
    assert e["reference_measured"] == 0.7


def test_a_window_of_less_sure_detections_expects_less_precision() -> None:
    rng = np.random.default_rng(0)
    reference = _reference(rng.beta(5, 2, 5_000))
    unsure = histogram("score", rng.beta(2, 3, 5_000))["counts"]
    e = estimates.estimate("detect", reference, {"score": dict(enumerate(unsure))}, None)
    assert e is not None and e["change"] < -0.05 and e["reference_measured"] is None


def test_no_estimate_without_calibration_or_for_a_rating_model() -> None:
    stats = _reference(np.array([0.7]))
    assert estimates.estimate("detect", stats | {"calibrated": False}, {}, None) is None
    assert estimates.estimate("regress", stats, {}, None) is None
