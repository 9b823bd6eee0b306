"""Crop measures against hand-computed cases, the baselines, and a box network whose boxes
always lie inside the image."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.selection import crop


def test_iou_bde_and_centre_distance_by_hand() -> None:
    a = np.array([[0.0, 0.0, 0.5, 0.5], [0.1, 0.1, 0.3, 0.3], [0.0, 0.0, 1.0, 1.0]])
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.1, 0.1, 0.3, 0.3], [0.5, 0.0, 1.0, 1.0]])
    # overlap 0.25 x 0.25 = 1/16 of union 1/4 + 1/4 - 1/16 = 7/16; identical; half inside
    np.testing.assert_allclose(crop.iou(a, b), [1 / 7, 1.0, 0.5])
    np.testing.assert_allclose(crop.bde(a, b), [0.25, 0.0, 0.125])
    np.testing.assert_allclose(crop.centre_distance(a, b), [np.hypot(0.25, 0.25), 0.0, 0.25])
    assert crop.iou(np.array([[0, 0, 0.2, 0.2]]), np.array([[0.5, 0.5, 1, 1]]))[0] == 0.0


def test_baselines() -> None:
    train = np.array(
        [[0.1, 0.2, 0.5, 0.6], [0.3, 0.2, 0.9, 0.8]]
    )  # widths 0.4, 0.6; heights 0.4, 0.6
    np.testing.assert_allclose(crop.centre_crop(train, 2), [[0.25, 0.25, 0.75, 0.75]] * 2)
    np.testing.assert_allclose(crop.whole_image(1), [[0, 0, 1, 1]])
    m = crop.measures(crop.whole_image(2), train)
    assert m["mean_iou"] == pytest.approx((0.16 + 0.36) / 2) and m["n"] == 2


def test_by_stage_splits_the_measures() -> None:
    truth = np.array([[0, 0, 0.5, 0.5], [0, 0, 1, 1], [0.2, 0.2, 0.4, 0.4]])
    result = crop.by_stage(crop.whole_image(3), truth, [1, 2, None])
    assert set(result) == {"1", "2", "none"}
    assert result["2"]["mean_iou"] == 1.0 and result["1"]["mean_iou"] == 0.25


def test_boxes_are_always_inside_the_image_and_learn_a_target() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    centre = 0.3 + 0.4 / (1 + np.exp(-x[:, :2]))
    boxes = np.concatenate([centre - 0.1, centre + 0.1], axis=1)
    network = crop.train(x, boxes, crop.CropParams(epochs=300))
    predicted = crop.predict(network, x * 50)  # far outside the training range
    assert np.all(predicted >= 0) and np.all(predicted <= 1)
    assert np.all(predicted[:, 2] > predicted[:, 0]) and np.all(predicted[:, 3] > predicted[:, 1])
    assert crop.iou(crop.predict(network, x), boxes).mean() > 0.6
