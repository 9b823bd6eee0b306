"""The integrity gate that must pass before any selection training (it fails closed), and
the inspection report written before any bulk work.

Rules, each checked on every row:

- ``project_id`` and ``group_id`` are non-empty;
- ``user_action`` is approve, crop or reject;
- ``image_width`` and ``image_height`` are integers > 0;
- ``final_crop_coords``, where present, is JSON ``[x1, y1, x2, y2]`` of numbers in [0, 1]
  with x1 < x2 and y1 < y2;
- a ``crop`` row has ``final_crop_coords`` (no crop decision without its crop);
- ``image_path`` is a file name only: no folder, no absolute path, no drive letter.

A row that breaks a rule is listed with its id, the field, its value as ``repr()``, the
reason and the fix. The gate passes only when no row breaks any rule and at least one row
exists; the counts by project and by action are reported either way.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.files import write_json

ACTIONS = ("approve", "crop", "reject")
INSPECT_ROWS = 50


@dataclass(frozen=True, kw_only=True)
class Violation:
    row_id: Any
    field: str
    value: str  # repr() of the stored value
    reason: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row_id": self.row_id,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
            "fix": self.fix,
        }


@dataclass(kw_only=True)
class Integrity:
    rows: int = 0
    by_project: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.rows > 0 and not self.violations

    @property
    def invalid_rows(self) -> int:
        return len({v.row_id for v in self.violations})

    def by_rule(self) -> dict[str, int]:
        return dict(Counter(f"{v.field}: {v.reason}" for v in self.violations).most_common())

    def summary(self) -> str:
        if self.passed:
            return f"PASS: {self.rows} rows, every rule holds"
        if not self.rows:
            return "FAIL: no decision rows"
        count = len(self.violations)
        return f"FAIL: {self.invalid_rows} of {self.rows} rows break a rule ({count} violations)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "PASS" if self.passed else "FAIL",
            "summary": self.summary(),
            "rows": self.rows,
            "invalid_rows": self.invalid_rows,
            "by_project": self.by_project,
            "by_action": self.by_action,
            "by_rule": self.by_rule(),
            "violations": [v.as_dict() for v in self.violations],
        }


def check(rows: Sequence[dict[str, Any]]) -> Integrity:
    result = Integrity(rows=len(rows))
    result.by_project = dict(sorted(Counter(str(r.get("project_id")) for r in rows).items()))
    result.by_action = dict(sorted(Counter(str(r.get("user_action")) for r in rows).items()))
    for row in rows:
        result.violations += _row_violations(row)
    return result


def _row_violations(row: dict[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    rid = row.get("id")

    def bad(name: str, reason: str, fix: str) -> None:
        out.append(
            Violation(row_id=rid, field=name, value=repr(row.get(name)), reason=reason, fix=fix)
        )

    for name in ("project_id", "group_id"):
        value = row.get(name)
        if value is None or not str(value).strip():
            bad(name, "empty", f"every decision needs its {name}")
    if row.get("user_action") not in ACTIONS:
        bad(
            "user_action",
            "not approve, crop or reject",
            "record the decision as approve, crop or reject",
        )
    for name in ("image_width", "image_height"):
        value = row.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            bad(name, "not an integer > 0", "store the image's pixel size")
    coords = row.get("final_crop_coords")
    if coords in (None, ""):
        if row.get("user_action") == "crop":
            bad(
                "final_crop_coords",
                "a crop decision without its crop",
                "store the crop as JSON [x1, y1, x2, y2] normalised to [0, 1], or drop the row",
            )
    else:
        problem = crop_problem(coords)
        if problem:
            bad(
                "final_crop_coords",
                problem,
                "JSON [x1, y1, x2, y2], each in [0, 1], x1 < x2, y1 < y2",
            )
    path = row.get("image_path")
    if not isinstance(path, str) or not path.strip():
        bad("image_path", "empty", "the image's file name")
    elif "/" in path or "\\" in path or (len(path) > 1 and path[1] == ":"):
        bad(
            "image_path",
            "not a file name only (a folder or an absolute path)",
            "store the file name; the images folder is given at run time",
        )
    return out


def crop_problem(coords: Any) -> str | None:
    """Why ``coords`` is not a normalised [x1, y1, x2, y2] box, or None."""
    try:
        value = json.loads(coords) if isinstance(coords, str) else coords
    except json.JSONDecodeError:
        return "not JSON"
    if isinstance(value, dict):
        value = [value.get(k) for k in ("x1", "y1", "x2", "y2")]
    if not isinstance(value, list) or len(value) != 4:
        return "not four numbers"
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return "not four finite numbers"
    x1, y1, x2, y2 = (float(v) for v in value)
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
        return "not normalised to [0, 1]"
    if not (x1 < x2 and y1 < y2):
        return "not x1 < x2 and y1 < y2"
    return None


def inspection(rows: Sequence[dict[str, Any]], integrity: Integrity, source: str) -> dict[str, Any]:
    """What a person reads before bulk work: the first rows as stored, the counts, the
    invalid rows."""
    return {
        "source": source,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "columns": sorted({k for r in rows for k in r}),
        "first_rows": [{k: repr(v) for k, v in r.items()} for r in rows[:INSPECT_ROWS]],
        "integrity": integrity.as_dict(),
    }


def write_inspection(report: dict[str, Any], folder: Path) -> Path:
    """``folder/ai_training_inspection_<UTC timestamp>.json``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"ai_training_inspection_{stamp}.json"
    write_json(path, report)
    return path
