"""COCO ingest against the real database: every rejection reason, idempotence, atomicity."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.db import datasets as datasets_db
from modelyard.db import ingests as ingests_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import IngestError, StateError
from modelyard.storage import ObjectStore
from tests.conftest import MODELYARD
from tests.datasets.coco_builder import CocoBuilder

pytestmark = pytest.mark.postgres


def _ingest(conn: Connection, store: ObjectStore, dataset: Dataset, path: Path) -> IngestReport:
    report = IngestReport(dataset=dataset.name, source_format="coco", source_path=str(path))
    return run_ingest(conn, store, dataset, read_source("coco", path), report)


def _garbage(b: CocoBuilder) -> None:
    (b.root / "images" / "bad.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    b.image("bad.jpg", write=False)


def _duplicate(b: CocoBuilder) -> None:
    shutil.copy(b.root / "images" / "good1.png", b.root / "images" / "copy.png")
    b.image("copy.png", write=False)


def _absolute(b: CocoBuilder) -> None:
    b.image("abs.png")
    b.images[-1]["file_name"] = str(b.root / "images" / "abs.png")


def _traversal(b: CocoBuilder) -> None:
    b.image("up.png")
    b.images[-1]["file_name"] = "images/../images/up.png"


def _orphan(b: CocoBuilder) -> None:
    b.annotations.append({"id": 999, "image_id": 12345, "category_id": 1, "bbox": [1, 1, 2, 2]})


# Each malformed record: how to add it, and the field its rejection must name.
MALFORMED: dict[str, tuple[Callable[[CocoBuilder], Any], str]] = {
    "missing image file": (lambda b: b.image("gone.png", write=False), "image_path"),
    "image does not decode": (_garbage, "image_path"),
    "absolute path": (_absolute, "image_path"),
    "path with ..": (_traversal, "image_path"),
    "width mismatch": (lambda b: b.image("w.png", width=99), "width"),
    "height not positive": (lambda b: b.image("h.png", height=-5), "height"),
    "bbox outside image": (
        lambda b: b.image("out.png", boxes=[(1, [50, 10, 30, 10])]),
        "objects[].bbox",
    ),
    "bbox without area": (
        lambda b: b.image("flat.png", boxes=[(2, [5, 5, 0, 10])]),
        "objects[].bbox",
    ),
    "bbox not four numbers": (
        lambda b: b.image("three.png", boxes=[(2, [5, 5, 10])]),
        "objects[].bbox",
    ),
    "class not in ontology": (
        lambda b: (
            b.categories.append({"id": 9, "name": "tram"}),
            b.image("tram.png", boxes=[(9, [1, 1, 5, 5])]),
        ),
        "objects[].class",
    ),
    "unknown category id": (
        lambda b: b.image("cat.png", boxes=[(7, [1, 1, 5, 5])]),
        "annotations[].category_id",
    ),
    "illegal split": (lambda b: b.image("split.png", split="val"), "split"),
    "illegal review_status": (lambda b: b.image("rev.png", review_status="ok"), "review_status"),
    "crop not normalised": (lambda b: b.image("crop1.png", crop=[10, 10, 50, 40]), "crop"),
    "crop x1 >= x2": (lambda b: b.image("crop2.png", crop=[0.6, 0.1, 0.4, 0.9]), "crop"),
    "duplicate image bytes": (_duplicate, "image_sha256"),
    "negative rating_count": (lambda b: b.image("rc.png", rating_count=-2), "rating_count"),
    "label_value not a number": (lambda b: b.image("lv.png", label_value="good"), "label_value"),
    "augmented without type": (
        lambda b: b.image("aug.png", is_augmented=True),
        "augmentation_type",
    ),
    "annotation for no image": (_orphan, "image_id"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_each_malformed_record_is_rejected_and_good_ones_kept(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path, kind: str
) -> None:
    b = CocoBuilder(tmp_path / "src")
    b.image("good1.png", split="train", group_key="cam-1", metadata={"stream": "front"})
    b.image("good2.png", boxes=[(2, [0, 0, 64, 48]), (3, [10, 10, 5, 5])])
    add, field = MALFORMED[kind]
    add(b)
    report = _ingest(conn, store, dataset, b.write())

    assert report.inserted == 2, report.as_dict()
    assert field in report.by_reason(), (kind, report.as_dict()["rejections"])
    assert all(r.reason and r.fix and r.record for r in report.rejections)
    stored = {r["image_path"] for r in samples_db.all_rows(conn, dataset.id)}
    assert stored == {"images/good1.png", "images/good2.png"}


def test_good_rows_are_stored_with_their_fields(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    b = CocoBuilder(tmp_path / "src")
    b.image(
        "a.png",
        split="test",
        group_key="site-1",
        is_compliant=False,
        label_value=3.5,
        rating_count=4,
        crop=[0.1, 0.2, 0.9, 0.8],
        metadata={"scenario": "night"},
    )
    _ingest(conn, store, dataset, b.write())
    (row,) = samples_db.all_rows(conn, dataset.id)
    assert (row["split"], row["group_key"], row["is_compliant"]) == ("test", "site-1", False)
    assert (row["label_value"], row["rating_count"]) == (3.5, 4)
    assert row["crop_x1"] == pytest.approx(0.1) and row["crop_y2"] == pytest.approx(0.8)
    assert row["annotations"] == {"objects": [{"class": "car", "bbox": [4.0, 4.0, 20.0, 10.0]}]}
    assert row["metadata"] == {"scenario": "night"}
    data = (tmp_path / "src" / "images" / "a.png").read_bytes()
    assert store.get_blob(row["image_sha256"].strip()) == data


def test_reingest_adds_nothing(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    b = CocoBuilder(tmp_path / "src")
    for i in range(5):
        b.image(f"{i}.png")
    path = b.write()
    first = _ingest(conn, store, dataset, path)
    second = _ingest(conn, store, dataset, path)
    assert (first.inserted, first.unchanged) == (5, 0)
    assert (second.inserted, second.unchanged, second.rejected_records) == (0, 5, 0)
    assert samples_db.count(conn, dataset.id) == 5
    assert len(ingests_db.latest_per_source(conn, dataset.id)) == 1


def test_same_path_with_other_bytes_is_a_conflict(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    b = CocoBuilder(tmp_path / "src")
    b.image("a.png")
    path = b.write()
    _ingest(conn, store, dataset, path)
    (tmp_path / "src" / "images" / "a.png").write_bytes(
        (tmp_path / "src" / "images" / "a.png").read_bytes() + b"\0"
    )
    report = _ingest(conn, store, dataset, path)
    assert [r.field for r in report.rejections] == ["image_path"]
    assert "different image at this path" in report.rejections[0].reason


def test_nothing_is_half_written(
    conn: Connection,
    store: ObjectStore,
    dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = CocoBuilder(tmp_path / "src")
    for i in range(3):
        b.image(f"{i}.png")
    path = b.write()

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash while recording the ingest")

    monkeypatch.setattr(ingests_db, "record", fail)
    with pytest.raises(RuntimeError):
        _ingest(conn, store, dataset, path)
    assert samples_db.count(conn, dataset.id) == 0
    monkeypatch.undo()
    assert _ingest(conn, store, dataset, path).inserted == 3


def test_ingest_needs_a_collecting_dataset(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    b = CocoBuilder(tmp_path / "src")
    b.image("a.png")
    ready = datasets_db.set_status(conn, dataset, "ready")
    with pytest.raises(StateError, match="collecting"):
        _ingest(conn, store, ready, b.write())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "'images' list"),
        ('{"images": [], "categories": [{"id": 1}]}', "categories\\[0\\]"),
    ],
)
def test_unreadable_file_raises(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(IngestError, match=message):
        read_source("coco", path)


def test_cli_reports_each_bad_record(
    conn: Connection, dataset: Dataset, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    b = CocoBuilder(tmp_path / "src")
    b.image("good.png")
    b.image("missing.png", write=False)
    b.image("outside.png", boxes=[(1, [60, 40, 10, 10])])
    b.image("badsplit.png", split="holdout")
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            *MODELYARD,
            "ingest",
            "coco",
            str(b.write()),
            "--dataset",
            "cars",
            "--report",
            str(report_path),
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 3, result.stderr
    report = json.loads(report_path.read_text())
    bad = {(r["image_path"], r["field"]) for r in report["rejections"]}
    assert bad == {
        ("images/missing.png", "image_path"),
        ("images/outside.png", "objects[0].bbox"),
        ("images/badsplit.png", "split"),
    }
    assert "rejected records" in result.stdout
    assert [r["image_path"] for r in samples_db.all_rows(conn, dataset.id)] == ["images/good.png"]


def test_process_pool_path_gives_the_same_result(
    conn: Connection,
    store: ObjectStore,
    dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelyard.datasets.ingest import run as run_mod

    monkeypatch.setattr(run_mod, "PARALLEL_MIN_RECORDS", 1)
    monkeypatch.setattr(run_mod.os, "cpu_count", lambda: 2)
    b = CocoBuilder(tmp_path / "src")
    for i in range(12):
        b.image(f"{i}.png")
    b.image("gone.png", write=False)
    report = _ingest(conn, store, dataset, b.write())
    assert (report.inserted, report.rejected_records) == (12, 1)
    for row in samples_db.all_rows(conn, dataset.id):
        assert store.has_blob(row["image_sha256"].strip())
    assert not (Path(store.url) / "blobs").exists()  # packed by the workers, none loose
    assert list((Path(store.url) / "packs").glob("*.idx"))
