"""Crop measures against hand-computed cases, the baselines, and a box network whose boxes
always lie inside the image and follow the object."""

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


def test_boxes_are_always_inside_the_image_and_learn_where_the_object_is() -> None:
    """A bright square anywhere on a dark frame; the crop is a box around it."""
    rng = np.random.default_rng(0)
    n, size = 96, 32
    x = np.full((n, 3, size, size), 0.1, np.float32)
    boxes = np.zeros((n, 4), np.float32)
    for k in range(n):
        cx, cy = rng.integers(6, size - 6, 2)
        x[k, :, cy - 3 : cy + 3, cx - 3 : cx + 3] = 0.9
        boxes[k] = np.clip(
            [(cx - 6) / size, (cy - 6) / size, (cx + 6) / size, (cy + 6) / size], 0, 1
        )
    params = crop.CropParams(image_size=size, epochs=200)
    network = crop.train(x[:64], boxes[:64], params)
    wild = rng.normal(0, 50, size=(8, 3, size, size)).astype(np.float32)  # far off any photo
    for predicted in (crop.predict(network, x), crop.predict(network, wild)):
        assert np.all(predicted >= 0) and np.all(predicted <= 1 + 1e-6)
        assert np.all(predicted[:, 2] > predicted[:, 0]) and np.all(
            predicted[:, 3] > predicted[:, 1]
        )
    held_out = crop.iou(crop.predict(network, x[64:]), boxes[64:]).mean()
    centred = crop.iou(crop.centre_crop(boxes[:64], n - 64), boxes[64:]).mean()
    assert held_out > 0.5 and held_out > centred + 0.2


def test_a_mirrored_photo_has_the_mirrored_crop() -> None:
    x = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    boxes = np.array([[0.1, 0.2, 0.4, 0.9], [0.0, 0.0, 1.0, 0.5]], np.float32)
    images, targets = crop.mirrored(x, boxes)
    assert images.shape == (4, 3, 2, 4)
    np.testing.assert_array_equal(images[2, 0, 0], x[0, 0, 0, ::-1])
    np.testing.assert_allclose(targets[2:], [[0.6, 0.2, 0.9, 0.9], [0.0, 0.0, 1.0, 0.5]])
