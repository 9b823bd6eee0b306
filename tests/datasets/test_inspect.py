from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.datasets.inspect import build_report
from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore
from tests import blobs
from tests.datasets.coco_builder import CocoBuilder

pytestmark = pytest.mark.postgres


def test_report_counts_and_invalid_rows(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    b = CocoBuilder(tmp_path / "src")
    b.image("a.png", boxes=[(1, [1, 1, 5, 5]), (3, [10, 10, 5, 5])], split="train", group_key="g1")
    b.image("b.png", boxes=[(2, [1, 1, 5, 5])], group_key="g1", review_status="pending")
    b.image("c.png", boxes=[(1, [1, 1, 5, 5])], group_key="g2")
    b.image("bad.png", split="nope")
    path = b.write()
    run_ingest(
        conn,
        store,
        dataset,
        read_source("coco", path),
        IngestReport(dataset="cars", source_format="coco", source_path=str(path)),
    )

    report = build_report(conn, store, dataset, first=2)
    assert report["samples"] == 3
    assert len(report["first_rows"]) == 2
    assert report["first_rows"][0]["image_path"] == "'images/a.png'"
    counts = report["counts"]
    assert counts["objects_by_class"] == {"car": 2, "person": 1, "sign": 1}
    assert counts["split"] == {"(none)": 2, "train": 1}
    assert counts["review_status"] == {"approved": 2, "pending": 1}
    assert counts["group_key"] == {"g1": 2, "g2": 1}
    assert report["invalid_rows"] == []
    (ingest,) = report["ingests"]
    assert ingest["rejected"] == 1 and ingest["rejections"][0]["field"] == "split"

    # the ontology shrinks and an image vanishes from the store: both rows become invalid
    conn.execute('UPDATE verify_ai_ml_datasets SET classes = \'["car", "person"]\'')
    shrunk = datasets_db.find(conn, "cars")
    sha_c = conn.execute(
        "SELECT image_sha256 FROM verify_ai_ml_samples WHERE image_path = 'images/c.png'"
    ).fetchone()["image_sha256"]
    blobs.remove(store, sha_c.strip())
    invalid = build_report(conn, ObjectStore(store.url), shrunk)["invalid_rows"]
    assert {(r["image_path"], r["field"]) for r in invalid} == {
        ("images/a.png", "objects[1].class"),
        ("images/c.png", "image_sha256"),
    }
