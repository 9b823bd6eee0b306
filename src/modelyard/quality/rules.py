"""Per-row facts the expectation suites check, derived from a manifest (all-string columns).

Each derived column is a count or a number whose legal value is simple (0, 1, > 0), so the
suites in ``expectations/`` stay plain Great Expectations and every failure names its rows.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
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


@dataclass(frozen=True, kw_only=True)
class ObjectFacts:
    """What the checks need of the ``objects`` column: per row, boxes outside the image or
    without area and objects of an unknown class; per class and split, samples holding it."""

    bbox_problems: np.ndarray
    unknown_class_objects: np.ndarray
    class_coverage: pd.DataFrame


# The manifest columns ``object_facts`` and ``slice_coverage`` read.
OBJECT_COLUMNS = ("split", "width", "height", "objects", "metadata")


def object_facts(manifest: pd.DataFrame, classes: tuple[str, ...]) -> ObjectFacts:
    """Parse the ``objects`` column and derive its checks (the costliest part of a gate:
    about 5 s per million rows, so ``validate`` runs it beside the rest)."""
    objects = parse_objects(manifest["objects"])
    width = _numbers(manifest["width"]).to_numpy()
    height = _numbers(manifest["height"]).to_numpy()
    bbox, unknown = _object_problems(objects, width, height, classes)
    return ObjectFacts(
        bbox_problems=bbox,
        unknown_class_objects=unknown,
        class_coverage=class_coverage(manifest, objects, classes),
    )


def with_object_facts(samples: pd.DataFrame, objects: ObjectFacts) -> pd.DataFrame:
    """``sample_facts`` with the per-row object checks, after ``height``."""
    out = samples.copy(deep=False)
    at = out.columns.get_loc("height") + 1
    out.insert(at, "unknown_class_objects", objects.unknown_class_objects)
    out.insert(at, "bbox_problems", objects.bbox_problems)
    return out


def sample_facts(manifest: pd.DataFrame, params: ValidateParams) -> pd.DataFrame:
    """The frame the ``samples`` suite runs on: identity columns plus the derived checks that
    need no objects (``with_object_facts`` adds those)."""
    width = _numbers(manifest["width"])
    height = _numbers(manifest["height"])
    split = manifest["split"].replace("", None)
    split_codes = manifest["split"].map({s: i for i, s in enumerate(SPLITS)}).fillna(-1)
    split_codes = split_codes.to_numpy(dtype=np.int64)
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
            "crop_problems": _crop_problems(manifest),
            "group_splits": leakage.splits_per_key(group, split_codes, in_split & (group != "")),
            "sha256_splits": leakage.splits_per_key(
                manifest["image_sha256"].to_numpy(dtype=object), split_codes, in_split
            ),
            "near_duplicate_splits": near,
            "near_duplicate_of": np.where(partner >= 0, paths[np.maximum(partner, 0)], ""),
            "image_dhash": manifest["image_dhash"].replace("", None),
        }
    )


def _numbers(column: pd.Series) -> pd.Series:
    """A column of whole numbers as int64 (a sixth of ``to_numeric``'s time); anything else
    goes through ``to_numeric``, where a value that is not a number becomes NaN."""
    try:
        return column.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        return pd.to_numeric(column, errors="coerce")


def class_coverage(
    manifest: pd.DataFrame, objects: Objects, classes: tuple[str, ...]
) -> pd.DataFrame:
    """Samples holding each class, per split (every ontology class, zeros included)."""
    pairs = pd.DataFrame({"row": objects.row, "class": objects.cls})
    pairs["split"] = manifest["split"].to_numpy(dtype=object)[objects.row]
    held = pairs.drop_duplicates(["row", "class"]).groupby(["class", "split"]).size()
    rows = [
        {"class": c, "split": s, "samples": int(held.get((c, s), 0))}
        for c in classes
        for s in SPLITS
    ]
    return pd.DataFrame(rows, columns=["class", "split", "samples"])


def slice_coverage(manifest: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """For every value a slice key takes anywhere in the snapshot: its samples in test."""
    metas = _json_column(manifest["metadata"], default="{}")
    in_test = (manifest["split"] == "test").to_numpy()
    rows = []
    for key in keys:
        values = pd.Series(
            [m.get(key) if isinstance(m, dict) else None for m in metas], dtype=object
        )
        present = values.notna().to_numpy()
        text = values[present].astype(str)
        tested = text[in_test[present]].value_counts()
        for value in sorted(text.unique()):
            rows.append({"key": key, "value": value, "test_samples": int(tested.get(value, 0))})
    return pd.DataFrame(rows, columns=["key", "value", "test_samples"])


@dataclass(frozen=True, kw_only=True)
class Objects:
    """Every object of every row, flattened: its row, class and box (NaN where malformed)."""

    row: np.ndarray
    cls: np.ndarray
    box: np.ndarray  # (n, 4) x, y, w, h


def parse_objects(column: pd.Series) -> Objects:
    """Parse the manifest's ``objects`` JSON column in one pass (one json.loads call).

    A row whose value is not a list counts as one malformed object; so does an entry that is
    not a mapping, or whose bbox is not four numbers (its box is NaN and fails every check).
    """
    lists = [v if type(v) is list else [None] for v in _json_column(column, default="[]")]
    sizes = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    flat = [obj for v in lists for obj in v]
    dicts = [obj if type(obj) is dict else {} for obj in flat]
    return Objects(
        row=np.repeat(np.arange(len(lists), dtype=np.int64), sizes),
        cls=np.asarray([d.get("class") for d in dicts], dtype=object),
        box=_boxes([d.get("bbox") for d in dicts]),
    )


def _boxes(values: list[Any]) -> np.ndarray:
    """(n, 4) float boxes; the fast path streams every number into one array, the slow one
    checks row by row."""
    if all(type(v) is list and len(v) == 4 for v in values):
        kinds = set(map(type, itertools.chain.from_iterable(values)))
        if kinds <= {int, float}:  # not bool, str or None, which fromiter would accept
            numbers = itertools.chain.from_iterable(values)
            return np.fromiter(numbers, dtype=np.float64, count=4 * len(values)).reshape(-1, 4)
    return np.asarray([_box(v) for v in values], dtype=np.float64).reshape(-1, 4)


_NO_BOX = (np.nan, np.nan, np.nan, np.nan)


def _box(value: Any) -> tuple[float, float, float, float]:
    numbers = isinstance(value, list) and len(value) == 4
    if numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return float(value[0]), float(value[1]), float(value[2]), float(value[3])
    return _NO_BOX


def _json_column(column: pd.Series, default: str) -> list[Any]:
    """json.loads over a whole column at once; a row that does not parse becomes None."""
    texts = [t or default for t in column.to_numpy(dtype=object).tolist()]
    try:
        with _gc_paused():
            parsed: list[Any] = orjson.loads("[" + ",".join(texts) + "]")
        if len(parsed) == len(texts):
            return parsed
    except orjson.JSONDecodeError:
        pass
    out = []
    for t in texts:
        try:
            out.append(json.loads(t))
        except json.JSONDecodeError:
            out.append(None)
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of new lists and dicts would set off the cyclic collector over and over
    (3.5 of 5 s parsing a million rows' objects); none of them can form a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _object_problems(
    objects: Objects, width: np.ndarray, height: np.ndarray, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: boxes outside the image or without area; objects of unknown class."""
    n = len(width)
    x, y, w, h = objects.box.T
    wi, hi = width[objects.row], height[objects.row]
    tol = 1e-6
    with np.errstate(invalid="ignore"):
        ok = (w > 0) & (h > 0) & (x >= -tol) & (y >= -tol)
        ok &= (x + w <= wi + tol) & (y + h <= hi + tol)
    bad_box = np.bincount(objects.row[~ok], minlength=n)
    known = np.isin(objects.cls, np.asarray(classes, dtype=object))
    unknown = np.bincount(objects.row[~known], minlength=n)
    return bad_box.astype(np.int64), unknown.astype(np.int64)


def _crop_problems(manifest: pd.DataFrame) -> np.ndarray:
    """1 where a crop is partly given, outside [0, 1], or has x1 >= x2 or y1 >= y2."""
    cols = ["crop_x1", "crop_y1", "crop_x2", "crop_y2"]
    given = manifest[cols] != ""
    if not given.to_numpy().any():  # the usual case: no crops at all
        return np.zeros(len(manifest), dtype=np.int64)
    values = manifest[cols].apply(pd.to_numeric, errors="coerce")
    x1, y1, x2, y2 = (values[c] for c in cols)
    partial = given.any(axis=1) & ~given.all(axis=1)
    full = given.all(axis=1)
    in_range = ((values >= 0) & (values <= 1)).all(axis=1)
    ordered = (x1 < x2) & (y1 < y2)
    bad = partial | (full & ~(in_range & ordered))
    out: np.ndarray = bad.to_numpy(dtype=np.int64)
    return out
