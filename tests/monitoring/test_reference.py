"""Reference statistics' pure parts: fixed-edge histograms and the image qualities."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from modelyard.monitoring.reference import BINS, histogram
from modelyard.sdk.imaging import qualities as image_qualities


def test_histogram_uses_fixed_edges_and_keeps_outliers_in_the_end_bins() -> None:
    h = histogram("score", [0.0, 0.01, 0.5, 0.99, 1.0, 1.7, -0.2])
    low, high, count = BINS["score"]
    assert h["edges"][0] == low and h["edges"][-1] == high and len(h["counts"]) == count
    assert sum(h["counts"]) == h["n"] == 7
    assert h["counts"][0] == 3 and h["counts"][-1] == 3  # -0.2 and 1.7 clipped in
    assert h["mean"] == pytest.approx(np.mean([0.0, 0.01, 0.5, 0.99, 1.0, 1.7, -0.2]))
    assert histogram("score", [])["mean"] is None


def test_image_qualities_see_brightness_contrast_and_blur() -> None:
    rng = np.random.default_rng(0)
    sharp = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    dark = Image.fromarray((np.asarray(sharp) // 4).astype(np.uint8))
    b_sharp, c_sharp, blur_sharp = image_qualities(sharp)
    b_dark, c_dark, _ = image_qualities(dark)
    _, c_blurred, blur_blurred = image_qualities(blurred)
    assert b_dark < b_sharp / 3 and c_dark < c_sharp / 3
    assert blur_blurred < blur_sharp - 1 and c_blurred < c_sharp
    flat = Image.new("RGB", (32, 32), (128, 128, 128))
    assert image_qualities(flat) == pytest.approx((128.0, 0.0, 0.0), abs=1)
