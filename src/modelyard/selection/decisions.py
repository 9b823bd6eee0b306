"""The decisions SQLite database, as the selection pipeline reads it: table ``decisions``,
version 3 (``PRAGMA user_version = 3``).

Columns: ``id`` (integer key), ``project_id``, ``group_id`` (the burst of similar photos a
person chose among), ``image_path`` (a file name, relative to the images folder),
``image_width``, ``image_height``, ``user_action`` (approve | crop | reject),
``final_crop_coords`` (JSON ``[x1, y1, x2, y2]`` normalised to [0, 1]; required for crop),
``stage`` (the workflow stage the photo had reached, an integer; optional), ``label``,
``decided_at``. Rows are read as stored, every value untouched: the integrity gate decides
what is legal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelyard.errors import IngestError

TABLE = "decisions"
VERSION = 3
COLUMNS = (
    "id",
    "project_id",
    "group_id",
    "image_path",
    "image_width",
    "image_height",
    "user_action",
    "final_crop_coords",
    "stage",
    "label",
    "decided_at",
)
REQUIRED = COLUMNS[:8]
SCHEMA = f"""
CREATE TABLE {TABLE} (
    id INTEGER PRIMARY KEY,
    project_id TEXT,
    group_id TEXT,
    image_path TEXT,
    image_width INTEGER,
    image_height INTEGER,
    user_action TEXT,
    final_crop_coords TEXT,
    stage INTEGER,
    label TEXT,
    decided_at TEXT
);
PRAGMA user_version = {VERSION};
"""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of ``decisions`` (ordered by id), values as stored."""
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
            return [dict(r) for r in db.execute(f"SELECT * FROM {TABLE} ORDER BY id")]  # noqa: S608
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path}: not a readable SQLite database: {exc}") from exc


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """A new version-3 database at ``path`` holding ``rows``; refuses to overwrite a file."""
    if path.exists():
        raise IngestError(f"{path}: exists; a decisions database is written new, never over one")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.executescript(SCHEMA)
        db.executemany(
            f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in COLUMNS)})",
            [tuple(r.get(c) for c in COLUMNS) for r in rows],
        )
    db.close()
    tmp.rename(path)


def version(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
