"""Apply a worked review set: every row with a ``corrected_label`` becomes a correction in a
new version of the dataset (a copy that names its parent), never an edit of the rows a model
was trained on.

A correction is checked before anything is written: ``annotations`` is a JSON list of
``{"class": name, "bbox": [x, y, w, h]}`` in the image's pixels with classes from the
dataset's ontology; ``is_compliant`` is true or false; ``label_value`` a rating from 0 to 5.
A bad row is reported by its line, field and fix, and the good rows are applied; the new
version is written in one transaction, whole or not at all.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.db import versions
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import IngestError

SOURCE = "review"


@dataclass(frozen=True, kw_only=True)
class Correction:
    line: int
    image_path: str
    fields: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Applied:
    dataset_id: str
    name: str
    version: int
    samples: int
    corrected: int
    unreviewed: int  # rows left with an empty corrected_label
    rejected: list[str]


def read(path: Path, classes: tuple[str, ...]) -> tuple[list[Correction], list[str], int]:
    """(corrections, rejections naming line and field, rows without a correction)."""
    if not path.is_file():
        raise IngestError(f"{path}: no such review file; `modelyard review build` writes one")
    corrections, rejected, unreviewed = [], [], 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"image_path", "field", "corrected_label"} - set(reader.fieldnames or [])
        if missing:
            raise IngestError(f"{path}: columns {sorted(missing)} are missing; is it a review set?")
        for line, row in enumerate(reader, start=2):
            text = (row.get("corrected_label") or "").strip()
            if not text:
                unreviewed += 1
                continue
            try:
                value = _parse(row["field"], text, classes)
            except ValueError as exc:
                rejected.append(f"line {line} ({row['image_path']}): corrected_label {exc}")
                continue
            corrections.append(
                Correction(line=line, image_path=row["image_path"], fields={row["field"]: value})
            )
    return corrections, rejected, unreviewed


def apply(conn: Connection, parent: Dataset, name: str, path: Path) -> Applied:
    corrections, rejected, unreviewed = read(path, parent.classes)
    if not corrections:
        raise IngestError(
            f"{path}: no usable corrections ({len(rejected)} rejected, {unreviewed} rows left "
            "empty); fill in corrected_label"
            + (f". First problem: {rejected[0]}" if rejected else "")
        )
    with conn.transaction():
        new_id, version, copied = versions.create_version(conn, parent, name)
        corrected = 0
        for c in corrections:
            if versions.correct(conn, new_id, c.image_path, c.fields, SOURCE):
                corrected += 1
            else:
                rejected.append(
                    f"line {c.line}: image_path {c.image_path} is not in dataset {parent.name}; "
                    "was the review built from another dataset?"
                )
    return Applied(dataset_id=str(new_id), name=name, version=version, samples=copied,
                   corrected=corrected, unreviewed=unreviewed, rejected=rejected)  # fmt: skip


def _parse(field: str, text: str, classes: tuple[str, ...]) -> Any:
    if field == "is_compliant":
        flag = {"true": True, "false": False, "1": True, "0": False}.get(text.lower())
        if flag is None:
            raise ValueError(f"'{text}' is not true or false")
        return flag
    if field == "label_value":
        try:
            rating = float(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a number (a rating from 0 to 5)") from None
        if not (math.isfinite(rating) and 0 <= rating <= 5):
            raise ValueError(f"{rating} is outside the rating scale 0-5")
        return rating
    if field == "annotations":
        return {"objects": _objects(text, classes)}
    raise ValueError(
        f"field '{field}' cannot be corrected (annotations, is_compliant, label_value)"
    )


def _objects(text: str, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        objects = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError('is not JSON; write [{"class": "car", "bbox": [x, y, w, h]}]') from None
    if not isinstance(objects, list):
        raise ValueError("must be a JSON list of objects ([] for an image with none)")
    out = []
    for k, obj in enumerate(objects):
        if not isinstance(obj, dict) or obj.get("class") not in classes:
            got = obj.get("class") if isinstance(obj, dict) else obj
            raise ValueError(f"object {k}: class {got!r} is not one of {list(classes)}")
        box = obj.get("bbox")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, int | float) for v in box)):  # fmt: skip
            raise ValueError(f"object {k}: bbox must be [x, y, w, h] (4 numbers), got {box!r}")
        if box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0:
            raise ValueError(f"object {k}: bbox {box} needs x, y >= 0 and w, h > 0")
        out.append({"class": obj["class"], "bbox": [float(v) for v in box]})
    return out
