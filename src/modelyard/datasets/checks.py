"""Record checks: pure functions from a ``SourceRecord`` to the reasons it cannot be ingested.

``field_problems`` needs nothing but the record and the ontology; ``image_problems`` also
needs the decoded image's size. ``to_sample`` turns a record that passed both into the row
that is inserted. Every rejection names the record, the field, the reason and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from modelyard.datasets.images import ImageFacts
from modelyard.datasets.records import REVIEW_STATUSES, SPLITS, Rejection, SourceRecord
from modelyard.db.samples import NewSample

# Tolerance for boxes that touch the image border after float conversion, in pixels.
EDGE_TOLERANCE_PX = 1e-3
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")

Check = Callable[[SourceRecord, Sequence[str]], list[Rejection]]


def path_problem(image_path: Any) -> tuple[str, str] | None:
    """Why ``image_path`` is not a legal relative path, with the fix; None when it is."""
    if not isinstance(image_path, str) or not image_path.strip():
        return "image path is missing or empty", "give the image's file name"
    if image_path.startswith("/") or _WINDOWS_DRIVE.match(image_path):
        return (
            f"absolute path '{image_path}'",
            "use a path relative to the source file's folder (or --images-dir)",
        )
    if "\\" in image_path:
        return f"backslash in '{image_path}'", "use '/' as the path separator"
    if ".." in image_path.split("/"):
        return f"'..' in '{image_path}'", "keep images inside the images folder; drop the '..'"
    return None


def _check_path(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    problem = path_problem(rec.image_path)
    return [rec.reject("image_path", *problem)] if problem else []


def _check_split(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    if rec.split is None or rec.split in SPLITS:
        return []
    hint = " (did you mean 'validation'?)" if rec.split in ("val", "valid", "dev") else ""
    return [
        rec.reject(
            "split",
            f"illegal split {rec.split!r}{hint}",
            f"use one of {', '.join(SPLITS)}, or leave it empty",
        )
    ]


def _check_review_status(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    if rec.review_status in REVIEW_STATUSES:
        return []
    return [
        rec.reject(
            "review_status",
            f"illegal review_status {rec.review_status!r}",
            f"use one of {', '.join(REVIEW_STATUSES)}",
        )
    ]


def _check_objects(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    out: list[Rejection] = []
    for i, obj in enumerate(rec.objects):
        name = obj.get("class")
        if name not in classes:
            out.append(
                rec.reject(
                    f"objects[{i}].class",
                    f"class {name!r} is not in the dataset's ontology "
                    f"({', '.join(classes) or 'empty'})",
                    "fix the label, or add the class to the ontology (ingest --add-classes)",
                )
            )
        bbox = obj.get("bbox")
        if not _is_numbers(bbox, 4):
            out.append(
                rec.reject(
                    f"objects[{i}].bbox",
                    f"bbox {bbox!r} is not four numbers",
                    "write the box as [x, y, width, height]",
                )
            )
        elif bbox[2] <= 0 or bbox[3] <= 0:
            out.append(
                rec.reject(
                    f"objects[{i}].bbox",
                    f"bbox {list(bbox)} has no area (width and height must be > 0)",
                    "drop the degenerate box or redraw it",
                )
            )
    return out


def _check_crop(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    if rec.crop is None:
        return []
    fix = "give the crop as [x1, y1, x2, y2] normalised to [0, 1] with x1 < x2 and y1 < y2"
    if not _is_numbers(rec.crop, 4):
        return [rec.reject("crop", f"crop {rec.crop!r} is not four numbers", fix)]
    x1, y1, x2, y2 = rec.crop
    if not all(0 <= v <= 1 for v in rec.crop):
        return [rec.reject("crop", f"crop {list(rec.crop)} is not normalised to [0, 1]", fix)]
    if not (x1 < x2 and y1 < y2):
        return [rec.reject("crop", f"crop {list(rec.crop)} needs x1 < x2 and y1 < y2", fix)]
    return []


def _check_values(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    out: list[Rejection] = []
    if rec.is_compliant is not None and not isinstance(rec.is_compliant, bool):
        out.append(
            rec.reject(
                "is_compliant",
                f"{rec.is_compliant!r} is not true/false",
                "write true or false, or leave it empty",
            )
        )
    if rec.label_value is not None and not _is_number(rec.label_value):
        out.append(
            rec.reject(
                "label_value",
                f"{rec.label_value!r} is not a number",
                "write a number (ratings are 0-5), or leave it empty",
            )
        )
    rc = rec.rating_count
    if rc is not None and (not isinstance(rc, int) or isinstance(rc, bool) or rc < 0):
        out.append(
            rec.reject(
                "rating_count",
                f"{rc!r} is not a non-negative integer",
                "write how many ratings the label averages (0 or more)",
            )
        )
    if not isinstance(rec.is_augmented, bool):
        out.append(
            rec.reject(
                "is_augmented", f"{rec.is_augmented!r} is not true/false", "write true or false"
            )
        )
    elif rec.is_augmented and not rec.augmentation_type:
        out.append(
            rec.reject(
                "augmentation_type",
                "augmented sample without augmentation_type",
                "name the augmentation (e.g. flip, jitter)",
            )
        )
    if not isinstance(rec.metadata, dict):
        out.append(
            rec.reject(
                "metadata",
                f"metadata {rec.metadata!r} is not an object",
                "write metadata as a JSON object of key: value",
            )
        )
    for name in ("group_key", "label_source", "augmentation_type"):
        value = getattr(rec, name)
        if value is not None and not isinstance(value, str):
            out.append(rec.reject(name, f"{value!r} is not text", f"write {name} as text"))
    return out


FIELD_CHECKS: tuple[Check, ...] = (
    _check_path,
    _check_split,
    _check_review_status,
    _check_objects,
    _check_crop,
    _check_values,
)


def field_problems(rec: SourceRecord, classes: Sequence[str]) -> list[Rejection]:
    """Every problem that can be found without opening the image."""
    out = [rec.reject(field, reason, fix) for field, reason, fix in rec.problems]
    for check in FIELD_CHECKS:
        out.extend(check(rec, classes))
    return out


def image_problems(rec: SourceRecord, facts: ImageFacts) -> list[Rejection]:
    """Problems that need the decoded image: declared size, boxes inside the image."""
    out: list[Rejection] = []
    for name, declared, actual in (
        ("width", rec.width, facts.width),
        ("height", rec.height, facts.height),
    ):
        if declared is None:
            continue
        if not _is_number(declared) or declared <= 0:
            out.append(
                rec.reject(
                    name,
                    f"{name} {declared!r} is not a positive number",
                    f"write the image's {name} in pixels ({actual})",
                )
            )
        elif declared != actual:
            out.append(
                rec.reject(
                    name,
                    f"declared {name} {declared} but the image is {actual}",
                    f"correct {name} to {actual}, or re-export the image",
                )
            )
    for i, obj in enumerate(rec.objects):
        box = pixel_box(obj, facts.width, facts.height)
        if box is None or box[2] <= 0 or box[3] <= 0:
            continue  # already reported by _check_objects
        x, y, w, h = box
        tol = EDGE_TOLERANCE_PX
        if x < -tol or y < -tol or x + w > facts.width + tol or y + h > facts.height + tol:
            out.append(
                rec.reject(
                    f"objects[{i}].bbox",
                    f"bbox {[round(v, 2) for v in box]} (x, y, w, h) reaches outside the "
                    f"{facts.width}x{facts.height} image",
                    "clip the box to the image, or fix its coordinates",
                )
            )
    return out


def pixel_box(obj: dict[str, Any], width: int, height: int) -> list[float] | None:
    """An object's box as pixel [x, y, w, h], whatever format the source used."""
    bbox = obj.get("bbox")
    if not _is_numbers(bbox, 4):
        return None
    if obj.get("format") == "cxcywh_norm":
        cx, cy, w, h = bbox
        return [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
    return [float(v) for v in bbox]


def to_sample(rec: SourceRecord, facts: ImageFacts) -> NewSample:
    """The row for a record that passed every check."""
    objects = []
    for obj in rec.objects:
        box = pixel_box(obj, facts.width, facts.height) or []
        objects.append({"class": obj["class"], "bbox": [round(v, 3) for v in box]})
    crop = tuple(float(v) for v in rec.crop) if rec.crop is not None else None
    return NewSample(
        image_path=rec.image_path,
        image_sha256=facts.sha256,
        image_dhash=facts.dhash,
        width=facts.width,
        height=facts.height,
        objects=objects,
        is_compliant=rec.is_compliant,
        split=rec.split,
        review_status=rec.review_status,
        is_augmented=rec.is_augmented,
        augmentation_type=rec.augmentation_type,
        group_key=rec.group_key,
        label_value=float(rec.label_value) if rec.label_value is not None else None,
        label_source=rec.label_source,
        rating_count=rec.rating_count,
        crop=crop,  # type: ignore[arg-type]
        metadata=rec.metadata,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_numbers(value: Any, n: int) -> TypeGuard[Sequence[float]]:
    return isinstance(value, list | tuple) and len(value) == n and all(map(_is_number, value))
