from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.datasets.synthetic import CLASSES, DemoConfig, generate
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore

SMALL = DemoConfig(count=24, size=96, seed=3)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", SMALL)
    generate(tmp_path / "b", SMALL)
    generate(tmp_path / "c", DemoConfig(count=24, size=96, seed=4))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_labels_follow_the_stated_rules(tmp_path: Path) -> None:
    doc = json.loads(generate(tmp_path, DemoConfig(count=60, size=96)).read_text())
    classes_of: dict[int, set[str]] = {img["id"]: set() for img in doc["images"]}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    for ann in doc["annotations"]:
        classes_of[ann["image_id"]].add(names[ann["category_id"]])
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96 and w > 0 and h > 0
    assert set(names.values()) == set(CLASSES)
    brightness: dict[str, list[float]] = {}
    for img in doc["images"]:
        assert img["is_compliant"] == ("person" not in classes_of[img["id"]])
        assert 0 <= img["label_value"] <= 5 and 0 <= img["rating_count"] <= 5
        assert {"stream", "scenario", "road_type"} <= set(img["metadata"])
        pixels = np.asarray(Image.open(tmp_path / img["file_name"]), dtype=float)
        brightness.setdefault(img["metadata"]["scenario"], []).append(pixels.mean())
    means = {k: float(np.mean(v)) for k, v in brightness.items()}
    assert means["night"] < means["dusk"] < means["day"]
    assert len({img["group_key"] for img in doc["images"]}) == 24


@pytest.mark.postgres
def test_demo_data_ingests_cleanly(
    conn: Connection, store: ObjectStore, dataset: Dataset, tmp_path: Path
) -> None:
    path = generate(tmp_path, SMALL)
    report = IngestReport(dataset=dataset.name, source_format="coco", source_path=str(path))
    run_ingest(conn, store, dataset, read_source("coco", path), report)
    assert (report.inserted, report.rejected_records) == (SMALL.count, 0)
