"""YOLO folder: ``data.yaml`` (or ``classes.txt``), ``images/[split/]*``, ``labels/[split/]*.txt``.

Each label line is ``class_id cx cy w h`` normalised to [0, 1]; an image without a label
file has no objects. A split folder (train, val/valid/validation, test) sets the split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelyard.datasets.ingest.source import Source
from modelyard.datasets.records import Rejection, SourceRecord
from modelyard.errors import IngestError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SPLIT_FOLDERS = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}


def read(root: Path) -> Source:
    if not (root / "images").is_dir():
        raise IngestError(f"{root}: a YOLO folder has an images/ folder (and labels/ beside it)")
    names = _class_names(root)
    records: list[SourceRecord] = []
    used_labels: set[Path] = set()
    for image in sorted(p for p in (root / "images").rglob("*") if p.is_file()):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = image.relative_to(root)
        label = root / "labels" / rel.relative_to("images").with_suffix(".txt")
        rec = SourceRecord(
            record=str(rel.as_posix()),
            image_path=rel.as_posix(),
            root=root,
            split=_split_of(rel),
            review_status="approved",
        )
        if label.is_file():
            used_labels.add(label)
            _read_labels(label, root, names, rec)
        records.append(rec)
    orphans = (
        [
            Rejection(
                record=str(p.relative_to(root)),
                field="image_path",
                reason="label file has no image beside it",
                fix="add the image under images/ or delete the label file",
            )
            for p in sorted((root / "labels").rglob("*.txt"))
            if p not in used_labels
        ]
        if (root / "labels").is_dir()
        else []
    )
    return Source(records=records, declared_classes=list(names), orphans=orphans)


def _class_names(root: Path) -> list[str]:
    for candidate in ("data.yaml", "dataset.yaml"):
        path = root / candidate
        if path.is_file():
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise IngestError(f"{path}: not valid YAML: {exc}") from exc
            return _names_from(doc.get("names"), path)
    classes = root / "classes.txt"
    if classes.is_file():
        return [
            line.strip()
            for line in classes.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    raise IngestError(f"{root}: no data.yaml or classes.txt naming the classes")


def _names_from(raw: Any, path: Path) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    if isinstance(raw, dict) and all(isinstance(k, int) for k in raw):
        if sorted(raw) != list(range(len(raw))):
            raise IngestError(f"{path}: 'names' ids must be 0..{len(raw) - 1} without gaps")
        return [str(raw[k]) for k in sorted(raw)]
    raise IngestError(f"{path}: 'names' must be a list or a mapping of id -> name")


def _split_of(rel: Path) -> str | None:
    parts = rel.parts
    return SPLIT_FOLDERS.get(parts[1]) if len(parts) > 2 else None


def _read_labels(label: Path, root: Path, names: list[str], rec: SourceRecord) -> None:
    rel = label.relative_to(root).as_posix()
    for lineno, line in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{rel} line {lineno}"
        try:
            class_id, cx, cy, w, h = int(fields[0]), *map(float, fields[1:])
        except ValueError:
            class_id = -1
        if len(fields) != 5 or class_id < 0:
            rec.problems.append(
                (
                    "label_line",
                    f"{where}: {line!r} is not 'class_id cx cy w h'",
                    "write five numbers: an integer class id, then the box",
                )
            )
            continue
        if class_id >= len(names):
            rec.problems.append(
                (
                    "label_line",
                    f"{where}: class id {class_id} is not one of the {len(names)} names",
                    "fix the id or add the name to data.yaml",
                )
            )
            continue
        rec.objects.append(
            {"class": names[class_id], "bbox": [cx, cy, w, h], "format": "cxcywh_norm"}
        )
