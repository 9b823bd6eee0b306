"""A review-decisions SQLite database (the AI Training Playbook's shape), table ``decisions``.

Columns: ``id, project_id, group_id, image_path, image_width, image_height, user_action``
(approve | crop | reject), ``final_crop_coords`` (JSON [x1, y1, x2, y2] normalised to [0, 1],
required for crop) and optionally ``label`` (a class name or compliance verdict text),
``decided_at``, ``stage`` (version 3: the workflow stage a photo reached). Mapping into
samples:

- approve -> review_status approved, the crop as proposed (if any), is_compliant true
- crop    -> review_status approved, the person's crop, is_compliant true
- reject  -> review_status rejected, is_compliant false
- group_id -> group_key; project_id, decision id, decided_at, stage -> metadata; label_source
  ``decision:<user_action>``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from modelyard.datasets.ingest.source import Source
from modelyard.datasets.records import SourceRecord
from modelyard.errors import IngestError

TABLE = "decisions"
REQUIRED = (
    "id",
    "project_id",
    "group_id",
    "image_path",
    "image_width",
    "image_height",
    "user_action",
    "final_crop_coords",
)
ACTIONS = {"approve": ("approved", True), "crop": ("approved", True), "reject": ("rejected", False)}


def read(path: Path, images_dir: Path | None = None) -> Source:
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            columns = [r[1] for r in db.execute(f"PRAGMA table_info({TABLE})")]
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise IngestError(
                    f"{path}: table '{TABLE}' is missing column(s) {', '.join(missing)} "
                    f"(found: {', '.join(columns) or 'no such table'})"
                )
            rows = [dict(r) for r in db.execute(f"SELECT * FROM {TABLE} ORDER BY id")]  # noqa: S608
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path}: not a readable SQLite database: {exc}") from exc
    root = images_dir or path.parent
    return Source(records=[_record(row, root) for row in rows])


def _record(row: dict[str, Any], root: Path) -> SourceRecord:
    rec = SourceRecord(
        record=f"decisions id={row['id']}",
        image_path=row["image_path"],
        root=root,
        width=row["image_width"],
        height=row["image_height"],
        group_key=None if row["group_id"] is None else str(row["group_id"]),
        metadata={
            "project_id": row["project_id"],
            "decision_id": row["id"],
            **({"decided_at": row["decided_at"]} if row.get("decided_at") else {}),
            **({"stage": row["stage"]} if row.get("stage") is not None else {}),
        },
    )
    action = row["user_action"]
    if action not in ACTIONS:
        rec.problems.append(
            (
                "user_action",
                f"user_action {action!r} is not approve, crop or reject",
                "record the decision as approve, crop or reject",
            )
        )
        return rec
    rec.review_status, rec.is_compliant = ACTIONS[action]
    rec.label_source = f"decision:{action}"
    if row.get("label"):
        rec.metadata["label"] = row["label"]
    coords = row["final_crop_coords"]
    if coords in (None, ""):
        if action == "crop":
            rec.problems.append(
                (
                    "final_crop_coords",
                    "a crop decision without crop coordinates",
                    "store the crop as JSON [x1, y1, x2, y2] normalised to [0, 1]",
                )
            )
        return rec
    rec.crop = _parse_crop(coords, rec)
    return rec


def _parse_crop(coords: Any, rec: SourceRecord) -> Any:
    try:
        value = json.loads(coords) if isinstance(coords, str) else coords
    except json.JSONDecodeError:
        rec.problems.append(
            (
                "final_crop_coords",
                f"{coords!r} is not JSON",
                "store the crop as JSON [x1, y1, x2, y2]",
            )
        )
        return None
    if isinstance(value, dict):
        value = [value.get(k) for k in ("x1", "y1", "x2", "y2")]
    return value
