"""Backfill: legacy decision CSVs into a NEW version-3 decisions database that
``modelyard ingest sqlite-decisions`` reads. The CSVs are opened read-only and never
changed; the database is written whole at a path that must not exist yet.

A legacy CSV has a header row. Column names are matched case-insensitively, with the
spellings older tools used:

============================  ===================================================
v3 column                     legacy spellings
============================  ===================================================
image_path                    image_path, filename, file, path, image
group_id                      group_id, group, burst, burst_id
project_id                    project_id, project
user_action                   user_action, action, decision
image_width / image_height    image_width / image_height, width / height
final_crop_coords             final_crop_coords, crop (JSON), or the four columns
                              crop_x1 crop_y1 crop_x2 crop_y2 (or x1 y1 x2 y2)
stage, label, decided_at      stage, label, decided_at (or timestamp)
============================  ===================================================

Values are converted, never guessed: actions keep/accept/approved -> approve,
discard/delete/rejected -> reject; crop coordinates in pixels (any value above 1) are
divided by the image's width and height; a path keeps its file name only (the images folder
is given at ingest). Every converted row then goes through the integrity gate: a row that
still breaks a rule, or whose file name another row already uses from a different folder,
is left out and reported (file, line, field, value, reason, fix); the good rows are written.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

from modelyard.errors import IngestError
from modelyard.selection import decisions, integrity

log = logging.getLogger(__name__)

ALIASES = {
    "image_path": ("image_path", "filename", "file", "path", "image"),
    "group_id": ("group_id", "group", "burst", "burst_id"),
    "project_id": ("project_id", "project"),
    "user_action": ("user_action", "action", "decision"),
    "image_width": ("image_width", "width"),
    "image_height": ("image_height", "height"),
    "final_crop_coords": ("final_crop_coords", "crop"),
    "stage": ("stage",),
    "label": ("label",),
    "decided_at": ("decided_at", "timestamp"),
}
CORNERS = (("crop_x1", "crop_y1", "crop_x2", "crop_y2"), ("x1", "y1", "x2", "y2"))
ACTIONS = {
    "approve": "approve",
    "approved": "approve",
    "keep": "approve",
    "kept": "approve",
    "accept": "approve",
    "crop": "crop",
    "cropped": "crop",
    "reject": "reject",
    "rejected": "reject",
    "discard": "reject",
    "delete": "reject",
}


@dataclass(frozen=True, kw_only=True)
class Backfill:
    database: Path
    written: int
    rejected: list[dict[str, Any]]  # file, line, field, value, reason, fix
    sources: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": str(self.database),
            "version": decisions.VERSION,
            "sources": self.sources,
            "written": self.written,
            "rejected": len(self.rejected),
            "rejections": self.rejected,
        }


def convert(sources: Sequence[Path], out: Path) -> Backfill:
    """Read every CSV of ``sources``, write the good rows to the new database ``out``."""
    if out.exists():
        raise IngestError(f"{out}: exists; the backfill writes a new database, never over one")
    rows: list[dict[str, Any]] = []
    where: dict[int, tuple[str, int, str | None]] = {}  # id -> file, line, original path
    for source in sources:
        for line, raw in _read(source):
            row = _convert(raw, len(rows) + 1)
            where[row["id"]] = (str(source), line, _first(raw, "image_path"))
            rows.append(row)
    bad = _rejections(rows, where)
    rejected_ids = {r["row_id"] for r in bad}
    good = [r for r in rows if r["id"] not in rejected_ids]
    if not good:
        raise IngestError(
            f"{', '.join(map(str, sources))}: no row survived the conversion "
            f"({len(bad)} rejections; first: {bad[0]['reason'] if bad else 'no rows'})"
        )
    decisions.write_rows(out, good)
    log.info("backfill: %d rows written to %s, %d rejected", len(good), out, len(rejected_ids))
    return Backfill(
        database=out, written=len(good), rejected=bad, sources=[str(s) for s in sources]
    )


def _read(source: Path) -> list[tuple[int, dict[str, str]]]:
    if not source.is_file():
        raise IngestError(f"{source}: no such file")
    with source.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise IngestError(f"{source}: no header row")
        names = {n.strip().lower() for n in reader.fieldnames}
        missing = [
            column
            for column in ("image_path", "group_id", "user_action")
            if not names & set(ALIASES[column])
        ]
        if missing:
            raise IngestError(
                f"{source}: no column for {', '.join(missing)} (found: "
                f"{', '.join(reader.fieldnames)}); see the legacy spellings in "
                "`modelyard ingest legacy-csv --help`"
            )
        return [
            (n + 2, {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()})
            for n, r in enumerate(reader)
        ]


def _first(raw: dict[str, str], column: str) -> str | None:
    for name in ALIASES[column]:
        if raw.get(name):
            return raw[name]
    return None


def _convert(raw: dict[str, str], row_id: int) -> dict[str, Any]:
    def first(column: str) -> str | None:
        return _first(raw, column)

    width, height = _integer(first("image_width")), _integer(first("image_height"))
    action = first("user_action")
    path = first("image_path")
    return {
        "id": row_id,
        "project_id": first("project_id") or "legacy",
        "group_id": first("group_id"),
        "image_path": _file_name(path) if path else path,
        "image_width": width,
        "image_height": height,
        "user_action": ACTIONS.get(action.lower(), action) if action else action,
        "final_crop_coords": _crop(raw, first("final_crop_coords"), width, height),
        "stage": _integer(first("stage")),
        "label": first("label"),
        "decided_at": first("decided_at"),
    }


def _file_name(path: str) -> str:
    return PureWindowsPath(path).name if "\\" in path or path[1:2] == ":" else Path(path).name


def _integer(value: str | None) -> Any:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return value  # kept as found: the integrity gate names it
    return int(number) if number.is_integer() else value


def _crop(raw: dict[str, str], packed: str | None, width: Any, height: Any) -> str | None:
    values: Any = None
    if packed:
        try:
            values = json.loads(packed)
        except json.JSONDecodeError:
            return packed  # kept as found: the integrity gate names it
    else:
        for names in CORNERS:
            if all(raw.get(n) for n in names):
                try:
                    values = [float(raw[n]) for n in names]
                except ValueError:
                    return json.dumps([raw[n] for n in names])
                break
    if values is None:
        return None
    if isinstance(values, dict):
        values = [values.get(k) for k in ("x1", "y1", "x2", "y2")]
    numbers = isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )
    sized = all(isinstance(v, int) and v > 0 for v in (width, height))
    if numbers and len(values) == 4 and max(values) > 1 and sized:  # pixels: normalise
        values = [values[0] / width, values[1] / height, values[2] / width, values[3] / height]
        values = [round(v, 6) for v in values]
    return json.dumps(values)


def _rejections(
    rows: list[dict[str, Any]], where: dict[int, tuple[str, int, str | None]]
) -> list[dict[str, Any]]:
    out = []
    for v in integrity.check(rows).violations:
        file, line, _ = where[v.row_id]
        out.append({"file": file, "line": line, **v.as_dict()})
    seen: dict[str, str] = {}
    for row in rows:
        file, line, path = where[row["id"]]
        name = row["image_path"]
        if not name or not path:
            continue
        if seen.setdefault(name, path) != path:
            out.append(
                {
                    "file": file,
                    "line": line,
                    "row_id": row["id"],
                    "field": "image_path",
                    "value": repr(path),
                    "reason": f"file name {name} is already taken by {seen[name]!r}",
                    "fix": "rename one of the two files so each file name is unique",
                }
            )
    return sorted(out, key=lambda r: (r["file"], r["line"]))
