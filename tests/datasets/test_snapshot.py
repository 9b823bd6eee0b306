"""Snapshot manifests: export-time gates, stable bytes, content hash; download and convert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.datasets import convert, download, snapshot
from modelyard.datasets import provenance as provenance_mod
from modelyard.datasets.snapshot import SnapshotParams, read_manifest
from modelyard.db import provenance as provenance_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import StateError
from modelyard.storage import ObjectStore
from tests import blobs

pytestmark = pytest.mark.postgres


def _write(conn: Connection, ds: Dataset, out: Path, **params: object) -> dict:
    snap = snapshot.build(conn, ds, SnapshotParams(**params))  # type: ignore[arg-type]
    return snapshot.write(snap, out)


def test_gates_exclude_count_and_list(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    total = conn.execute("SELECT count(*) AS n FROM verify_ai_ml_samples").fetchone()["n"]
    not_approved = conn.execute(
        "SELECT count(*) AS n FROM verify_ai_ml_samples WHERE review_status <> 'approved'"
    ).fetchone()["n"]
    low = conn.execute(
        "SELECT count(*) AS n FROM verify_ai_ml_samples WHERE review_status = 'approved' "
        "AND coalesce(rating_count, 0) < 2"
    ).fetchone()["n"]
    info = _write(conn, demo_dataset, tmp_path, min_rating_count=2)
    assert info["rows"]["full"] == total - not_approved - low
    assert info["excluded"] == {
        "rating_count below 2": low,
        "review_status not in ['approved']": not_approved,
    }
    excluded = read_manifest(tmp_path / "excluded.csv")
    assert len(excluded) == not_approved + low and set(excluded.columns) == {
        "sample_id",
        "image_path",
        "reason",
    }
    full = read_manifest(tmp_path / "manifest_full.csv")
    assert list(full.columns) == list(snapshot.MANIFEST_COLUMNS)
    assert list(full["image_path"]) == sorted(full["image_path"])
    parts = sum(
        len(read_manifest(tmp_path / f"manifest_{s}.csv")) for s in ("train", "validation", "test")
    )
    assert parts == len(full)


def test_same_rows_same_bytes_and_hash_changes_with_content(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    first = _write(conn, demo_dataset, tmp_path / "a")
    second = _write(conn, demo_dataset, tmp_path / "b")
    for name in ("manifest_full.csv", "manifest_test.csv", "snapshot.json", "excluded.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    conn.execute(
        "UPDATE verify_ai_ml_samples SET label_value = 4.5 WHERE id = "
        "(SELECT id FROM verify_ai_ml_samples WHERE review_status = 'approved' LIMIT 1)"
    )
    third = _write(conn, demo_dataset, tmp_path / "c")
    assert first["content_hash"] == second["content_hash"] != third["content_hash"]


def test_rows_a_looser_schema_let_in_are_excluded(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    """A registry behind DATABASE_URL may predate our constraints: the gates do not rely on
    them. (This test's throwaway database drops them to plant the rows.)"""
    conn.execute(
        "ALTER TABLE verify_ai_ml_samples DROP CONSTRAINT verify_ai_ml_samples_image_path_check"
    )
    conn.execute(
        "ALTER TABLE verify_ai_ml_samples DROP CONSTRAINT verify_ai_ml_samples_image_sha256_check"
    )
    first, second = conn.execute(
        "SELECT id FROM verify_ai_ml_samples WHERE review_status = 'approved' "
        "ORDER BY image_path LIMIT 2"
    ).fetchall()
    conn.execute(
        "UPDATE verify_ai_ml_samples SET image_path = '../outside.jpg' WHERE id = %s",
        (first["id"],),
    )
    conn.execute(
        "UPDATE verify_ai_ml_samples SET image_sha256 = 'x' WHERE id = %s", (second["id"],)
    )
    info = _write(conn, demo_dataset, tmp_path)
    assert info["excluded"]["missing or invalid image path"] == 1
    assert info["excluded"]["missing or invalid image sha256"] == 1
    excluded = read_manifest(tmp_path / "excluded.csv")
    reasons = dict(zip(excluded["sample_id"], excluded["reason"], strict=True))
    assert reasons[str(first["id"])] == "missing or invalid image path"
    full = read_manifest(tmp_path / "manifest_full.csv")
    assert str(first["id"]) not in set(full["sample_id"])


def test_rows_with_commas_quotes_and_newlines_are_cut_whole(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    """Manifests are cut from COPY's rows by code: a quoted field spanning lines stays whole."""
    kept, dropped = conn.execute(
        "SELECT id FROM verify_ai_ml_samples WHERE review_status = 'approved' "
        "AND split = 'test' ORDER BY image_path LIMIT 2"
    ).fetchall()
    conn.execute(
        "UPDATE verify_ai_ml_samples SET image_path = %s, group_key = %s WHERE id = %s",
        ('odd, "name"\nline2.jpg', "g,1\n2", kept["id"]),
    )
    conn.execute(
        "UPDATE verify_ai_ml_samples SET image_path = %s, review_status = 'pending' WHERE id = %s",
        ('b, "x"\ny.jpg', dropped["id"]),
    )
    _write(conn, demo_dataset, tmp_path)
    test = read_manifest(tmp_path / "manifest_test.csv")
    row = test[test["sample_id"] == str(kept["id"])].iloc[0]
    assert (row["image_path"], row["group_key"]) == ('odd, "name"\nline2.jpg', "g,1\n2")
    full = read_manifest(tmp_path / "manifest_full.csv")
    assert len(full) == sum(
        len(read_manifest(tmp_path / f"manifest_{s}.csv")) for s in ("train", "validation", "test")
    )
    excluded = read_manifest(tmp_path / "excluded.csv")
    listed = excluded[excluded["sample_id"] == str(dropped["id"])].iloc[0]
    assert listed["image_path"] == 'b, "x"\ny.jpg'
    assert listed["reason"] == "review_status not in ['approved']"


def test_download_drops_missing_and_corrupt_images_and_convert_writes_layouts(
    conn: Connection, demo_dataset: Dataset, store: ObjectStore, tmp_path: Path
) -> None:
    _write(conn, demo_dataset, tmp_path / "snap")
    test = read_manifest(tmp_path / "snap" / "manifest_test.csv")
    gone, corrupt = test.loc[0], test.loc[1]
    blobs.remove(store, gone["image_sha256"])
    blobs.corrupt(store, corrupt["image_sha256"])
    store = ObjectStore(store.url)
    report = download.DownloadReport()
    active = download.download(test, store, tmp_path / "images", report)
    assert len(active) == len(test) - 2, report.dropped
    reasons = {d["image_path"]: d["reason"] for d in report.dropped}
    assert "missing" in reasons[gone["image_path"]] and "corrupt" in reasons[corrupt["image_path"]]
    again = download.DownloadReport()
    download.download(active.drop(columns="local_path"), store, tmp_path / "images", again)
    assert again.cached == len(active) and again.fetched == 0

    frames = {"train": active.iloc[:0], "validation": active.iloc[:0], "test": active}
    counts = convert.convert(frames, demo_dataset.classes, tmp_path / "images", tmp_path / "conv")
    assert counts["test"] == len(active)
    coco = json.loads((tmp_path / "conv" / "coco" / "test.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["car", "person", "sign"]
    first = coco["images"][0]
    assert (tmp_path / "conv" / "coco" / coco["images_root"] / first["file_name"]).is_file()
    n_objects = sum(len(json.loads(o)) for o in active["objects"])
    assert len(coco["annotations"]) == n_objects
    labels = list((tmp_path / "conv" / "yolo" / "labels" / "test").glob("*.txt"))
    assert len(labels) == len(active)
    lines = [ln.split() for p in labels for ln in p.read_text().splitlines()]
    assert len(lines) == n_objects
    assert all(0 <= float(v) <= 1 for ln in lines for v in ln[1:])


def test_provenance_records_each_training_sample_once(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    info = _write(conn, demo_dataset, tmp_path)
    provenance_mod.record_from_snapshot(
        conn, model_version="demo-detector/1", snapshot_dir=tmp_path, export_params={"imgsz": 64}
    )
    rows = provenance_db.samples_of_run(conn, "demo-detector/1")
    assert len(rows) == info["rows"]["train"] + info["rows"]["validation"]
    assert {r["split"] for r in rows} == {"train", "validation"}
    params = conn.execute("SELECT params_json FROM model_training_runs").fetchone()["params_json"]
    assert params["snapshot_hash"] == info["content_hash"] and params["export_params"] == {
        "imgsz": 64
    }
    with pytest.raises(StateError, match="already has a training run"):
        provenance_mod.record_from_snapshot(
            conn, model_version="demo-detector/1", snapshot_dir=tmp_path
        )
