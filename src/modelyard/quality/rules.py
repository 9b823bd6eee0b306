"""Per-row facts the expectation suites check, derived from a manifest (all-string columns).

Each derived column is a count or a number whose legal value is simple (0, 1, > 0), so the
suites in ``expectations/`` stay plain Great Expectations and every failure names its rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelyard.datasets.records import SPLITS
from modelyard.errors import ConfigError
from modelyard.quality import leakage


@dataclass(frozen=True, kw_only=True)
class ValidateParams:
    """params.yaml ``validate``: the thresholds of the quality gate."""

    near_duplicate_hamming: int = 6
    min_samples_per_class: int = 1
    slice_keys: tuple[str, ...] = ("stream", "scenario", "road_type")

    def __post_init__(self) -> None:
        if not 0 <= self.near_duplicate_hamming <= leakage.MAX_HAMMING:
            raise ConfigError(
                f"validate.near_duplicate_hamming: {self.near_duplicate_hamming} is outside "
                f"0..{leakage.MAX_HAMMING}"
            )
        if self.min_samples_per_class < 0:
            raise ConfigError("validate.min_samples_per_class: must be 0 or more")


def sample_facts(
    manifest: pd.DataFrame, classes: tuple[str, ...], params: ValidateParams
) -> pd.DataFrame:
    """The frame the ``samples`` suite runs on: identity columns plus derived checks."""
    width = pd.to_numeric(manifest["width"], errors="coerce")
    height = pd.to_numeric(manifest["height"], errors="coerce")
    objects = [_objects(text) for text in manifest["objects"]]
    bbox, unknown = _object_problems(objects, width.to_numpy(), height.to_numpy(), set(classes))
    split = manifest["split"].replace("", None)
    split_codes = np.array([SPLITS.index(s) if s in SPLITS else -1 for s in manifest["split"]])
    in_split = split_codes >= 0
    group = manifest["group_key"].to_numpy(dtype=object)
    hashes, valid = leakage.parse_hashes(manifest["image_dhash"].to_numpy(dtype=object))
    near, partner = leakage.cross_split_near_duplicates(
        hashes, valid, split_codes, params.near_duplicate_hamming
    )
    paths = manifest["image_path"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "sample_id": manifest["sample_id"].replace("", None),
            "image_path": manifest["image_path"],
            "split": split,
            "group_key": manifest["group_key"],
            "review_status": manifest["review_status"],
            "width": width,
            "height": height,
            "bbox_problems": bbox,
            "unknown_class_objects": unknown,
            "crop_problems": _crop_problems(manifest),
            "group_splits": leakage.splits_per_key(group, split_codes, in_split & (group != "")),
            "sha256_splits": leakage.splits_per_key(
                manifest["image_sha256"].to_numpy(dtype=object), split_codes, in_split
            ),
            "near_duplicate_splits": near,
            "near_duplicate_of": [paths[p] if p >= 0 else "" for p in partner],
            "image_dhash": manifest["image_dhash"].replace("", None),
        }
    )


def class_coverage(manifest: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """Samples holding each class, per split (every ontology class, zeros included)."""
    counts = {(c, s): 0 for c in classes for s in SPLITS}
    for text, split in zip(manifest["objects"], manifest["split"], strict=True):
        if split in SPLITS:
            for name in {str(o.get("class")) for o in _objects(text)}:
                if (name, split) in counts:
                    counts[(name, split)] += 1
    return pd.DataFrame(
        [{"class": c, "split": s, "samples": n} for (c, s), n in counts.items()],
        columns=["class", "split", "samples"],
    )


def slice_coverage(manifest: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """For every value a slice key takes anywhere in the snapshot: its samples in test."""
    metas = [_metadata(text) for text in manifest["metadata"]]
    rows = []
    for key in keys:
        values = pd.Series([m.get(key) for m in metas], dtype=object)
        present = values.notna()
        in_test = present & (manifest["split"] == "test")
        tested = values[in_test].astype(str).value_counts()
        for value in sorted(values[present].astype(str).unique()):
            rows.append({"key": key, "value": value, "test_samples": int(tested.get(value, 0))})
    return pd.DataFrame(rows, columns=["key", "value", "test_samples"])


def _objects(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError:
        return [{"class": None, "bbox": None}]
    return value if isinstance(value, list) else [{"class": None, "bbox": None}]


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _object_problems(
    objects: list[list[dict[str, Any]]], width: np.ndarray, height: np.ndarray, classes: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: boxes outside the image or without area; objects of unknown class."""
    bbox = np.zeros(len(objects), dtype=np.int64)
    unknown = np.zeros(len(objects), dtype=np.int64)
    for i, objs in enumerate(objects):
        for obj in objs:
            unknown[i] += obj.get("class") not in classes
            bbox[i] += not _box_ok(obj.get("bbox"), width[i], height[i])
    return bbox, unknown


def _box_ok(box: Any, width: float, height: float) -> bool:
    if not isinstance(box, list) or len(box) != 4:
        return False
    if not all(isinstance(v, int | float) for v in box):
        return False
    x, y, w, h = (float(v) for v in box)
    tol = 1e-6
    inside = x >= -tol and y >= -tol and x + w <= width + tol and y + h <= height + tol
    return w > 0 and h > 0 and inside


def _crop_problems(manifest: pd.DataFrame) -> np.ndarray:
    """1 where a crop is partly given, outside [0, 1], or has x1 >= x2 or y1 >= y2."""
    cols = ["crop_x1", "crop_y1", "crop_x2", "crop_y2"]
    given = manifest[cols] != ""
    values = manifest[cols].apply(pd.to_numeric, errors="coerce")
    x1, y1, x2, y2 = (values[c] for c in cols)
    partial = given.any(axis=1) & ~given.all(axis=1)
    full = given.all(axis=1)
    in_range = ((values >= 0) & (values <= 1)).all(axis=1)
    ordered = (x1 < x2) & (y1 < y2)
    bad = partial | (full & ~(in_range & ordered))
    out: np.ndarray = bad.to_numpy(dtype=np.int64)
    return out
