"""YOLO folders, CSV manifests and SQLite decision databases, each with good and bad records."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import IngestError
from modelyard.storage import ObjectStore
from tests.images import write_image

pytestmark = pytest.mark.postgres


def _run(
    conn: Connection, store: ObjectStore, dataset: Dataset, fmt: str, path: Path
) -> IngestReport:
    report = IngestReport(dataset=dataset.name, source_format=fmt, source_path=str(path))
    return run_ingest(conn, store, dataset, read_source(fmt, path), report)


def _rows(conn: Connection, dataset: Dataset) -> dict[str, dict[str, object]]:
    return {r["image_path"]: r for r in samples_db.all_rows(conn, dataset.id)}


# ------------------------------------------------------------------ YOLO


def test_yolo_folder(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    root = tmp_path / "yolo"
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [car, person, sign]\n")
    write_image(root / "images" / "train" / "a.png", size=(100, 50))
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n2 0.1 0.1 0.2 0.2\n")
    write_image(root / "images" / "val" / "b.png")  # no label file: background image
    write_image(root / "images" / "val" / "c.png")
    (root / "labels" / "val" / "c.txt").write_text("7 0.5 0.5 0.1 0.1\n")  # class id too big
    write_image(root / "images" / "val" / "d.png")
    (root / "labels" / "val" / "d.txt").write_text("1 0.95 0.5 0.2 0.2\n")  # leaves the image
    write_image(root / "images" / "val" / "e.png")
    (root / "labels" / "val" / "e.txt").write_text("1 0.5 0.5\n")  # too few numbers
    (root / "labels" / "val" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    report = _run(conn, store, dataset, "yolo", root)
    rows = _rows(conn, dataset)
    assert set(rows) == {"images/train/a.png", "images/val/b.png"}
    a = rows["images/train/a.png"]
    assert a["split"] == "train" and rows["images/val/b.png"]["split"] == "validation"
    assert a["annotations"]["objects"] == [  # type: ignore[index]
        {"class": "car", "bbox": [40.0, 15.0, 20.0, 20.0]},
        {"class": "sign", "bbox": [0.0, 0.0, 20.0, 10.0]},
    ]
    fields = {(r.record, r.field) for r in report.rejections}
    assert fields == {
        ("images/val/c.png", "label_line"),
        ("images/val/d.png", "objects[0].bbox"),
        ("images/val/e.png", "label_line"),
        ("labels/val/ghost.txt", "image_path"),
    }


def test_yolo_without_names_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(IngestError, match=r"data\.yaml"):
        read_source("yolo", tmp_path)


# ------------------------------------------------------------------ CSV


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    columns = sorted({k for r in rows for k in r}, key=lambda c: (c != "image_path", c))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_manifest(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(tmp_path / name)
    good = {"review_status": "approved", "split": "test", "meta.stream": "rear"}
    path = _write_csv(
        tmp_path / "m.csv",
        [
            {
                "image_path": "a.png",
                "class": "car",
                "x": 1,
                "y": 1,
                "w": 10,
                "h": 10,
                **good,
                "is_compliant": "yes",
                "rating_count": 3,
                "label_value": 4.5,
            },
            {
                "image_path": "a.png",
                "class": "sign",
                "x": 20,
                "y": 5,
                "w": 5,
                "h": 5,
                **good,
                "is_compliant": "yes",
                "rating_count": 3,
                "label_value": 4.5,
            },
            {"image_path": "b.png", **good},  # no objects
            {
                "image_path": "c.png",
                "class": "car",
                "x": 1,
                "y": 1,
                "w": 5,
                "h": 5,
                "split": "train",
            },
            {
                "image_path": "c.png",
                "class": "car",
                "x": 9,
                "y": 9,
                "w": 5,
                "h": 5,
                "split": "test",
            },
            {
                "image_path": "d.png",
                "class": "car",
                "x": 1,
                "y": 1,
                "w": 5,
                "h": 5,
                "is_compliant": "maybe",
            },
        ],
    )
    report = _run(conn, store, dataset, "csv", path)
    rows = _rows(conn, dataset)
    assert set(rows) == {"a.png", "b.png"}
    a = rows["a.png"]
    assert a["is_compliant"] is True and a["rating_count"] == 3
    assert a["metadata"] == {"stream": "rear"}
    assert len(a["annotations"]["objects"]) == 2  # type: ignore[index]
    assert {(r.record, r.field) for r in report.rejections} == {
        ("lines 5-6", "split"),
        ("line 7", "is_compliant"),
    }


def test_csv_unknown_column_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "m.csv", [{"image_path": "a.png", "colour": "red"}])
    with pytest.raises(IngestError, match=r"unknown column.*colour"):
        read_source("csv", path)


# ------------------------------------------------------------------ SQLite decisions


def _decisions(path: Path, rows: list[tuple[object, ...]]) -> Path:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE decisions (id INTEGER PRIMARY KEY, project_id TEXT, "
            "group_id TEXT, image_path TEXT, image_width INT, image_height INT, "
            "user_action TEXT, final_crop_coords TEXT, decided_at TEXT)"
        )
        db.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return path


def test_sqlite_decisions(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):
        write_image(tmp_path / name)
    crop = json.dumps([0.1, 0.2, 0.8, 0.9])
    path = _decisions(
        tmp_path / "decisions.db",
        [
            (1, "proj-1", "driver-7", "a.png", 64, 48, "approve", None, "2026-01-01"),
            (2, "proj-1", "driver-7", "b.png", 64, 48, "crop", crop, None),
            (3, "proj-1", "driver-8", "c.png", 64, 48, "reject", None, None),
            (4, "proj-1", "driver-8", "d.png", 64, 48, "crop", None, None),  # no crop
            (5, "proj-1", "driver-8", "e.png", 64, 48, "crop", "[0.8, 0.1, 0.2, 0.9]", None),
        ],
    )
    report = _run(conn, store, dataset, "sqlite-decisions", path)
    rows = _rows(conn, dataset)
    assert set(rows) == {"a.png", "b.png", "c.png"}
    assert (rows["a.png"]["review_status"], rows["a.png"]["is_compliant"]) == ("approved", True)
    assert rows["b.png"]["crop_x2"] == pytest.approx(0.8)
    assert rows["b.png"]["label_source"] == "decision:crop"
    assert (rows["c.png"]["review_status"], rows["c.png"]["group_key"]) == ("rejected", "driver-8")
    assert rows["a.png"]["metadata"] == {
        "project_id": "proj-1",
        "decision_id": 1,
        "decided_at": "2026-01-01",
    }
    assert {(r.record, r.field) for r in report.rejections} == {
        ("decisions id=4", "final_crop_coords"),
        ("decisions id=5", "crop"),
    }


def test_sqlite_missing_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE decisions (id INTEGER, image_path TEXT)")
    with pytest.raises(IngestError, match=r"missing column.*user_action"):
        read_source("sqlite-decisions", path)
