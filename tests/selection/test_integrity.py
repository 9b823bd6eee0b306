"""The selection integrity gate: each rule planted in an otherwise good database and caught
(row, field, repr of the value), the inspection report, and the generated databases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import IngestError
from modelyard.selection import decisions, integrity, synthetic
from tests.conftest import MODELYARD

GOOD: dict[str, Any] = {
    "id": 1,
    "project_id": "proj-a",
    "group_id": "proj-a/burst-0001",
    "image_path": "a.jpg",
    "image_width": 640,
    "image_height": 480,
    "user_action": "crop",
    "final_crop_coords": "[0.1, 0.2, 0.6, 0.9]",
    "stage": 2,
    "label": None,
    "decided_at": "2026-11-01T12:00:00+00:00",
}


def test_a_good_row_passes() -> None:
    result = integrity.check(
        [GOOD, {**GOOD, "id": 2, "user_action": "reject", "final_crop_coords": None}]
    )
    assert result.passed and result.summary() == "PASS: 2 rows, every rule holds"
    assert result.by_action == {"crop": 1, "reject": 1}


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"project_id": ""}, "project_id", "empty"),
        ({"group_id": None}, "group_id", "empty"),
        ({"group_id": "   "}, "group_id", "empty"),
        ({"user_action": "keep"}, "user_action", "not approve, crop or reject"),
        ({"image_width": 0}, "image_width", "not an integer > 0"),
        ({"image_height": -3}, "image_height", "not an integer > 0"),
        ({"image_width": "640"}, "image_width", "not an integer > 0"),
        ({"final_crop_coords": "[0.1, 0.2, 1.2, 0.9]"}, "final_crop_coords", "not normalised"),
        ({"final_crop_coords": "[0.6, 0.2, 0.1, 0.9]"}, "final_crop_coords", "x1 < x2"),
        ({"final_crop_coords": "[0.1, 0.9, 0.6, 0.2]"}, "final_crop_coords", "y1 < y2"),
        ({"final_crop_coords": "[0.1, 0.2, 0.6]"}, "final_crop_coords", "not four numbers"),
        ({"final_crop_coords": "{oops"}, "final_crop_coords", "not JSON"),
        ({"final_crop_coords": None}, "final_crop_coords", "a crop decision without its crop"),
        ({"image_path": "/data/photos/a.jpg"}, "image_path", "not a file name only"),
        ({"image_path": "photos/a.jpg"}, "image_path", "not a file name only"),
        ({"image_path": "C:\\\\photos\\\\a.jpg"}, "image_path", "not a file name only"),
        ({"image_path": ""}, "image_path", "empty"),
    ],
)
def test_each_rule_planted_is_caught(change: dict[str, Any], field: str, reason: str) -> None:
    others = [{**GOOD, "id": i} for i in (1, 2, 4)]
    planted = {**GOOD, "id": 3, **change}
    result = integrity.check([*others, planted])
    assert not result.passed and result.invalid_rows == 1
    (violation,) = result.violations
    assert (violation.row_id, violation.field) == (3, field)
    assert reason in violation.reason and violation.fix
    assert violation.value == repr(planted[field])
    assert result.summary() == "FAIL: 1 of 4 rows break a rule (1 violations)"


def test_no_rows_fails_closed() -> None:
    assert not integrity.check([]).passed


def test_inspection_report_holds_the_first_50_rows_as_repr(tmp_path: Path) -> None:
    rows = [{**GOOD, "id": i, "project_id": "proj-a" if i % 3 else "proj-b"} for i in range(80)]
    rows[70]["user_action"] = "maybe"
    result = integrity.check(rows)
    path = integrity.write_inspection(integrity.inspection(rows, result, "x.db"), tmp_path)
    assert path.name.startswith("ai_training_inspection_") and path.suffix == ".json"
    report = json.loads(path.read_text())
    assert len(report["first_rows"]) == 50
    assert report["first_rows"][0]["image_path"] == "'a.jpg'"
    assert report["first_rows"][0]["label"] == "None"
    assert report["integrity"]["by_project"] == {"proj-a": 53, "proj-b": 27}
    assert report["integrity"]["by_action"] == {"crop": 79, "maybe": 1}
    assert report["integrity"]["violations"][0]["row_id"] == 70
    assert report["integrity"]["status"] == "FAIL"


def test_decisions_database_round_trip_and_no_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    decisions.write_rows(path, [GOOD])
    assert decisions.version(path) == 3
    assert decisions.read_rows(path) == [GOOD]
    with pytest.raises(IngestError, match="written new, never over one"):
        decisions.write_rows(path, [GOOD])
    other = tmp_path / "old.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE decisions (id INTEGER, project_id TEXT)")
    db.close()
    with pytest.raises(IngestError, match="missing column"):
        decisions.read_rows(other)


@pytest.mark.parametrize("decisive", [False, True])
def test_generated_databases_pass_and_carry_the_stage_signal(
    tmp_path: Path, decisive: bool
) -> None:
    cfg = synthetic.SelectionConfig(groups=40, seed=2, stage_decisive=decisive)
    summary = synthetic.generate(tmp_path, cfg)
    rows = decisions.read_rows(Path(summary["decisions"]))
    assert integrity.check(rows).passed
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group_id"], []).append(r)
    assert len(groups) == 40
    for members in groups.values():
        assert sum(m["user_action"] != "reject" for m in members) == 1
        assert all((tmp_path / "images" / m["image_path"]).is_file() for m in members)
    baseline = summary["highest_stage_baseline"]
    if decisive:
        assert baseline == 1.0
    else:  # better than chance, far from certain
        assert 0.35 < baseline < 0.8
    crops = [r for r in rows if r["user_action"] == "crop"]
    assert crops and all(integrity.crop_problem(r["final_crop_coords"]) is None for r in crops)


def test_cli_inspect_fails_closed_on_a_bad_database(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "d.db"
    decisions.write_rows(path, [GOOD, {**GOOD, "id": 2, "image_path": "/abs/b.jpg"}])
    result = subprocess.run(
        [*MODELYARD, "selection", "inspect", str(path), "--reports", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "FAIL: 1 of 2 rows break a rule" in result.stdout
    assert "row 2: image_path = '/abs/b.jpg'" in result.stdout
    assert len(list((tmp_path / "r").glob("ai_training_inspection_*.json"))) == 1
