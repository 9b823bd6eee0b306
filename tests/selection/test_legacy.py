"""Backfill of legacy decision CSVs: spellings and units converted, bad rows left out and
named, the CSVs untouched, a new version-3 database that the normal ingest reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from modelyard.errors import IngestError
from modelyard.selection import decisions, integrity, legacy
from tests.conftest import MODELYARD

OLD = """Filename,Burst,Project,Decision,Width,Height,crop_x1,crop_y1,crop_x2,crop_y2,Stage
/mnt/shoots/day1/a.jpg,b1,p1,keep,200,100,,,,,3
/mnt/shoots/day1/b.jpg,b1,p1,discard,200,100,,,,,2
C:\\\\shoots\\\\c.jpg,b2,p1,cropped,200,100,20,10,120,90,4
d.jpg,b2,p1,rejected,200,100,,,,,1
e.jpg,b3,p1,crop,200,100,,,,,1
f.jpg,,p1,keep,200,100,,,,,1
/other/a.jpg,b3,p1,reject,200,100,,,,,1
"""
NEWER = """image_path,group_id,project_id,user_action,image_width,image_height,crop,timestamp
g.jpg,b4,p2,approve,64,64,,2026-01-02T00:00:00Z
h.jpg,b4,p2,crop,64,64,"[0.1, 0.1, 0.5, 0.5]",2026-01-02T00:01:00Z
"""


def _csvs(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "old.csv", tmp_path / "newer.csv"]
    paths[0].write_text(OLD, encoding="utf-8")
    paths[1].write_text(NEWER, encoding="utf-8")
    return paths


def test_legacy_rows_are_converted_and_bad_ones_named(tmp_path: Path) -> None:
    sources = _csvs(tmp_path)
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources]
    done = legacy.convert(sources, tmp_path / "decisions.db")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources] == before
    rows = decisions.read_rows(tmp_path / "decisions.db")
    assert decisions.version(tmp_path / "decisions.db") == 3
    assert integrity.check(rows).passed
    by_file = {r["image_path"]: r for r in rows}
    assert sorted(by_file) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "g.jpg", "h.jpg"]
    assert by_file["a.jpg"]["user_action"] == "approve" and by_file["a.jpg"]["stage"] == 3
    assert by_file["b.jpg"]["user_action"] == "reject"
    assert json.loads(by_file["c.jpg"]["final_crop_coords"]) == [0.1, 0.1, 0.6, 0.9]  # pixels
    assert json.loads(by_file["h.jpg"]["final_crop_coords"]) == [0.1, 0.1, 0.5, 0.5]
    assert by_file["g.jpg"]["decided_at"] == "2026-01-02T00:00:00Z"
    reasons = {(r["line"], r["field"]): r["reason"] for r in done.rejected}
    assert reasons == {
        (6, "final_crop_coords"): "a crop decision without its crop",
        (7, "group_id"): "empty",
        (8, "image_path"): "file name a.jpg is already taken by '/mnt/shoots/day1/a.jpg'",
    }
    assert all(r["file"].endswith("old.csv") and r["fix"] for r in done.rejected)


def test_an_existing_database_or_a_csv_without_the_columns_is_refused(tmp_path: Path) -> None:
    sources = _csvs(tmp_path)
    (tmp_path / "taken.db").write_bytes(b"")
    with pytest.raises(IngestError, match="never over one"):
        legacy.convert(sources, tmp_path / "taken.db")
    bare = tmp_path / "bare.csv"
    bare.write_text("name,verdict\nx.jpg,keep\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no column for image_path, group_id, user_action"):
        legacy.convert([bare], tmp_path / "new.db")
    assert not (tmp_path / "new.db").exists()


@pytest.mark.postgres
def test_the_backfilled_database_goes_through_the_normal_ingest(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    sources = _csvs(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    for k, name in enumerate("abcdgh"):
        size = (200, 100) if name < "g" else (64, 64)
        Image.new("RGB", size, (40 * k, 90, 160)).save(images / f"{name}.jpg")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MODELYARD, *args], env=cli_env, cwd=tmp_path, capture_output=True, text=True
        )

    done = run("ingest", "legacy-csv", *map(str, sources), "--out", "decisions.db")
    assert done.returncode == 3, done.stdout + done.stderr  # rows were left out: it says so
    assert "6 rows written" in done.stdout and "3 rows left out" in done.stdout
    assert "old.csv:7: group_id = None: empty" in done.stdout
    report = json.loads((tmp_path / "decisions_backfill.json").read_text())
    assert report["written"] == 6 and report["rejected"] == 3
    for args in (
        ("dataset", "create", "--policy", "photo-lab", "--name", "old", "--classes", "keep"),
        (
            "ingest",
            "sqlite-decisions",
            "decisions.db",
            "-d",
            "photo-lab/old",
            "--images-dir",
            "images",
        ),
    ):
        step = run(*args)
        assert step.returncode == 0, step.stdout + step.stderr
    assert "6 inserted" in step.stdout
