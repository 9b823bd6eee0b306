"""COCO detection json: ``images``, ``annotations``, ``categories``.

modelyard reads its own fields from each image entry when present: split, review_status,
is_compliant, label_value, label_source, rating_count, group_key, is_augmented,
augmentation_type, crop ([x1, y1, x2, y2] normalised) and metadata (an object).
Image files are found relative to the json's folder, or to ``images_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.datasets.ingest.source import EXTRA_FIELDS, Source, load_json
from modelyard.datasets.records import Rejection, SourceRecord
from modelyard.errors import IngestError


def read(path: Path, images_dir: Path | None = None) -> Source:
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise IngestError(f"{path}: a COCO file is an object with an 'images' list")
    categories = _categories(path, doc.get("categories", []))
    annotations = doc.get("annotations", [])
    if not isinstance(annotations, list):
        raise IngestError(f"{path}: 'annotations' must be a list")
    root = images_dir or path.parent
    records, by_id = _image_records(doc["images"], root)
    orphans = _attach_annotations(annotations, by_id, categories)
    return Source(records=records, declared_classes=list(categories.values()), orphans=orphans)


def _categories(path: Path, raw: Any) -> dict[Any, str]:
    if not isinstance(raw, list):
        raise IngestError(f"{path}: 'categories' must be a list of {{id, name}}")
    out: dict[Any, str] = {}
    for i, cat in enumerate(raw):
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise IngestError(f"{path}: categories[{i}] needs an 'id' and a text 'name'")
        out[cat["id"]] = cat["name"]
    return out


def _image_records(images: list[Any], root: Path) -> tuple[list[SourceRecord], dict[Any, Any]]:
    records: list[SourceRecord] = []
    by_id: dict[Any, SourceRecord] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict):
            img = {"file_name": None, "_bad": img}
        rec = SourceRecord(
            record=f"images[{i}] (id={img.get('id')!r})",
            image_path=img.get("file_name"),
            root=root,
            width=img.get("width"),
            height=img.get("height"),
        )
        for name in EXTRA_FIELDS:
            if name in img:
                setattr(rec, name, img[name])
        if "_bad" in img:
            rec.problems.append(
                (
                    "images",
                    f"entry is {img['_bad']!r}, not an object",
                    "write each image as an object with id and file_name",
                )
            )
        image_id = img.get("id")
        if image_id is None:
            rec.problems.append(("id", "image has no id", "give every image a unique id"))
        elif image_id in by_id:
            rec.problems.append(
                (
                    "id",
                    f"id {image_id!r} is used by {by_id[image_id].record} too",
                    "give every image a unique id",
                )
            )
        else:
            by_id[image_id] = rec
        records.append(rec)
    return records, by_id


def _attach_annotations(
    annotations: list[Any], by_id: dict[Any, SourceRecord], categories: dict[Any, str]
) -> list[Rejection]:
    orphans: list[Rejection] = []
    for i, ann in enumerate(annotations):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        rec = by_id.get(image_id)
        if rec is None or not isinstance(ann, dict):
            orphans.append(
                Rejection(
                    record=f"annotations[{i}]",
                    field="image_id",
                    reason=f"annotation refers to image_id {image_id!r}, which is not in 'images'",
                    fix="fix the image_id or add the image",
                )
            )
            continue
        category = ann.get("category_id")
        if category not in categories:
            rec.problems.append(
                (
                    f"annotations[{i}].category_id",
                    f"category_id {category!r} is not in 'categories'",
                    "fix the category_id or add the category",
                )
            )
            continue
        rec.objects.append(
            {"class": categories[category], "bbox": ann.get("bbox"), "format": "xywh"}
        )
    return orphans
