"""CSV manifest: one row per object (or one row per image without objects).

Columns: ``image_path`` (required); ``class, x, y, w, h`` (pixel box, all empty for an image
without objects); optional ``width, height, split, review_status, is_compliant, label_value,
label_source, rating_count, group_key, is_augmented, augmentation_type, crop_x1, crop_y1,
crop_x2, crop_y2``; ``meta.<key>`` columns become metadata. Rows of the same image must agree
on every image-level column.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelyard.datasets.ingest.source import Source
from modelyard.datasets.records import SourceRecord
from modelyard.errors import IngestError

BOX_COLUMNS = ("class", "x", "y", "w", "h")
CROP_COLUMNS = ("crop_x1", "crop_y1", "crop_x2", "crop_y2")
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE | _FALSE:
        return low in _TRUE
    raise ValueError(f"{text!r} is not true/false")


def _int(text: str) -> int:
    return int(text)


def _text(text: str) -> str:
    return text


PARSERS: dict[str, Callable[[str], Any]] = {
    "width": _int,
    "height": _int,
    "split": _text,
    "review_status": _text,
    "is_compliant": _bool,
    "label_value": float,
    "label_source": _text,
    "rating_count": _int,
    "group_key": _text,
    "is_augmented": _bool,
    "augmentation_type": _text,
    **{c: float for c in CROP_COLUMNS},
}


def read(path: Path, images_dir: Path | None = None) -> Source:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            _check_columns(path, columns)
            rows = list(enumerate(reader, start=2))
    except FileNotFoundError as exc:
        raise IngestError(f"{path}: no such file") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"{path}: cannot read as UTF-8 CSV: {exc}") from exc
    root = images_dir or path.parent
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for lineno, row in rows:
        groups.setdefault(row.get("image_path") or f"<empty at line {lineno}>", []).append(
            (lineno, row)
        )
    records = [_record(rows_of, root) for rows_of in groups.values()]
    classes = sorted({r.get("class", "") for _, r in rows} - {""})
    return Source(records=records, declared_classes=classes)


def _check_columns(path: Path, columns: list[str]) -> None:
    if "image_path" not in columns:
        raise IngestError(f"{path}: the header has no 'image_path' column")
    known = {"image_path", *BOX_COLUMNS, *PARSERS}
    unknown = [c for c in columns if c not in known and not c.startswith("meta.")]
    if unknown:
        raise IngestError(
            f"{path}: unknown column(s) {', '.join(unknown)}; "
            f"known: image_path, {', '.join(BOX_COLUMNS)}, {', '.join(PARSERS)}, meta.<key>"
        )


def _record(rows: list[tuple[int, dict[str, str]]], root: Path) -> SourceRecord:
    first_line, first = rows[0]
    lines = f"line {first_line}" if len(rows) == 1 else f"lines {first_line}-{rows[-1][0]}"
    rec = SourceRecord(record=lines, image_path=first.get("image_path") or None, root=root)
    values: dict[str, Any] = {}
    for column, parse in PARSERS.items():
        texts = {(row.get(column) or "").strip() for _, row in rows}
        if len(texts) > 1:
            rec.problems.append(
                (
                    column,
                    f"rows of this image disagree: {sorted(texts)}",
                    f"give every row of the image the same {column}",
                )
            )
            continue
        text = texts.pop()
        if text:
            try:
                values[column] = parse(text)
            except ValueError:
                rec.problems.append(
                    (
                        column,
                        f"{text!r} cannot be read as {column}",
                        f"write a valid {column} or leave it empty",
                    )
                )
    crop = [values.pop(c, None) for c in CROP_COLUMNS]
    if any(v is not None for v in crop):
        rec.crop = crop
    for name, value in values.items():
        setattr(rec, name, value)
    rec.metadata = {k[5:]: v for k, v in first.items() if k.startswith("meta.") and v}
    for lineno, row in rows:
        _add_object(rec, lineno, row)
    return rec


def _add_object(rec: SourceRecord, lineno: int, row: dict[str, str]) -> None:
    cells = [(row.get(c) or "").strip() for c in BOX_COLUMNS]
    if not any(cells):
        return
    try:
        bbox = [float(v) for v in cells[1:]]
    except ValueError:
        rec.problems.append(
            (
                "bbox",
                f"line {lineno}: box {cells[1:]} is not four numbers",
                "write the pixel box as four numbers",
            )
        )
        return
    rec.objects.append({"class": cells[0] or None, "bbox": bbox, "format": "xywh"})
