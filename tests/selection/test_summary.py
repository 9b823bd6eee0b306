"""The daily summary says only what was measured: steps that have not run are named."""

from __future__ import annotations

from pathlib import Path

from modelyard.selection import integrity, summary
from tests.selection.test_integrity import GOOD


def test_a_summary_before_any_training_names_the_missing_steps(tmp_path: Path) -> None:
    reports = tmp_path / "daily"
    rows = [GOOD, {**GOOD, "id": 2, "user_action": "maybe"}]
    checked = integrity.check(rows)
    integrity.write_inspection(integrity.inspection(rows, checked, "d.db"), reports)
    path = summary.write(reports, tmp_path / "models", day="2026-12-04")
    assert path == reports / "2026-12-04.md"
    text = path.read_text()
    assert "- gate: **FAIL: 1 of 2 rows break a rule (1 violations)**" in text
    assert "- 1 x user_action: not approve, crop or reject" in text
    assert "Not run: `modelyard ranker train`." in text
    assert "Not run: `modelyard crop train`." in text
    assert summary.write(reports, tmp_path / "models", day="2026-12-04").read_text() == text
