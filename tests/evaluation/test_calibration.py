"""Calibration fixes a miscalibrated score and says so on held-out data."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation import calibration
from modelyard.evaluation.calibration import Calibrator, ScoreCalibration


def overconfident(seed: int, n: int = 3000, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities p; the model reports its logit times 3 (too sure of itself) and
    ``shift`` added (too keen; temperature scaling cannot undo that): the usual shape of a
    neural network's miscalibration."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    reported = 1 / (1 + np.exp(-(3 * np.log(p / (1 - p)) + shift)))
    return reported, (rng.random(n) < p).astype(float)


@pytest.mark.parametrize("method", ["isotonic", "platt", "temperature"])
def test_each_method_lowers_ece_on_held_out_scores(method: str) -> None:
    val, test = overconfident(0), overconfident(1)
    before = calibration.ece(*test)
    fitted = calibration.fit(method, *val)
    after = calibration.ece(fitted.apply(test[0]), test[1])
    assert before is not None and after is not None
    assert before > 0.15
    assert after < before / 3


def test_choice_is_made_out_of_fold_and_identity_wins_on_calibrated_scores() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 4000)
    hits = (rng.random(4000) < p).astype(float)
    candidates = calibration.choose([(p, hits)], seed=0)
    assert set(candidates) == set(calibration.METHODS)
    # already calibrated: no method beats leaving it alone by much
    assert candidates["identity"] is not None and candidates["identity"] < 0.03
    skewed = calibration.choose([overconfident(3, shift=1.0)], seed=0)
    assert calibration.best(skewed) != "identity"


def test_per_class_calibration_round_trips_through_json() -> None:
    s0, h0 = overconfident(4, 800, shift=1.0)
    s1, h1 = overconfident(5, 800)
    s1 = s1**4  # class 1 is under-confident instead
    scores = np.concatenate([s0, s1])
    labels = np.repeat([0, 1], 800)
    hits = np.concatenate([h0, h1])
    fitted = calibration.calibrate(
        "detect", (scores, labels, hits), ["car", "sign"], min_per_class=50, seed=0
    )
    assert set(fitted.per_class) == {"car", "sign"}
    loaded = ScoreCalibration.from_dict(fitted.as_dict())
    applied = loaded.apply(scores, labels, ["car", "sign"])
    np.testing.assert_allclose(applied, fitted.apply(scores, labels, ["car", "sign"]), atol=1e-5)
    assert calibration.ece(applied, hits) < calibration.ece(scores, hits) / 2


def test_degenerate_inputs_fall_back_to_identity() -> None:
    c = calibration.fit("isotonic", np.array([0.2, 0.9]), np.array([1.0, 1.0]))
    assert c.method == "identity"
    assert calibration.ece(np.zeros(0), np.zeros(0)) is None
    table = Calibrator(method="identity", x=(0.0, 1.0), y=(0.0, 1.0))
    assert table.apply(np.array([0.3]))[0] == pytest.approx(0.3)
