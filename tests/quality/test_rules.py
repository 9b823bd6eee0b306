"""Derivation of the checked columns from manifest text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelyard.quality import rules


def test_boxes_that_are_not_four_numbers_are_nan() -> None:
    column = pd.Series(
        [
            '[{"class": "car", "bbox": [1, 2, 3.5, 4]}]',
            '[{"class": "car", "bbox": [1, 2, 3, "4"]}, {"class": "sign", "bbox": [0, 0, 1, 1]}]',
            '[{"class": "car", "bbox": [true, 2, 3, 4]}, {"bbox": [1, 2, null, 4]}]',
            '[{"class": "car", "bbox": [1, 2, 3]}]',
            "[]",
        ]
    )
    objects = rules.parse_objects(column)
    assert objects.row.tolist() == [0, 1, 1, 2, 2, 3]
    assert objects.cls.tolist() == ["car", "car", "sign", "car", None, "car"]
    valid = ~np.isnan(objects.box).any(axis=1)
    assert valid.tolist() == [True, False, True, False, False, False]
    assert objects.box[0].tolist() == [1.0, 2.0, 3.5, 4.0]


def test_all_numeric_boxes_take_the_fast_path_with_the_same_result() -> None:
    rows = [f'[{{"class": "car", "bbox": [{i}, {i + 1}, 2.5, {i % 7}]}}]' for i in range(50)]
    objects = rules.parse_objects(pd.Series(rows))
    expected = [[i, i + 1, 2.5, i % 7] for i in range(50)]
    assert objects.box.tolist() == expected
