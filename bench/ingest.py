"""Ingest throughput: modelyard's ingest beside a naive one-INSERT-per-row loop, same process.

Both ingest the same COCO source of N records (small generated PNGs, one box each)
into a fresh database of an embedded PostgreSQL, end to end: read and decode every image,
hash it, store it in the object store, and write the rows. modelyard's ingest stores a
batch's images as one pack; the naive loop stores each image as its own file, the way a
first version would. Targets: >= 2,000 records/s for modelyard and >= 5x the naive loop.

    python bench/ingest.py [--records 10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from modelyard.datasets import checks
from modelyard.datasets.images import read_image
from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.db import connection, migrate
from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore

ROOT = Path(__file__).resolve().parents[1]


def make_source(root: Path, n: int, side: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        name = f"images/{i:06d}.png"  # random pixels, lossless: every image distinct
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / name)
        images.append(
            {
                "id": i + 1,
                "file_name": name,
                "width": side,
                "height": side,
                "review_status": "approved",
                "group_key": f"g{i % 50}",
            }
        )
        annotations.append(
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [2, 2, 10 + i % 10, 8]}
        )
    path = root / "annotations.json"
    path.write_text(
        json.dumps(
            {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "car"}]}
        )
    )
    return path


def file_create_ms(folder: Path, n: int = 2000) -> float:
    """The disk's cost of creating one small file, ms: what the naive loop pays per image."""
    folder.mkdir()
    payload = b"x" * 1024
    start = time.perf_counter()
    for i in range(n):
        (folder / str(i)).write_bytes(payload)
    ms = (time.perf_counter() - start) * 1000 / n
    shutil.rmtree(folder)
    return ms


def fresh_dataset(admin_url: str, name: str) -> tuple[Connection, Dataset]:
    connection.ensure_database(admin_url, name)
    conn = connection.connect(connection.with_database(admin_url, name))
    migrate.migrate(conn, migrate.discover(migrate.default_migrations_dir()))
    ds = datasets_db.create(conn, policy_id="bench", name="bench", classes=["car"])
    return conn, ds


def modelyard_ingest(conn: Connection, store: ObjectStore, ds: Dataset, path: Path) -> int:
    report = IngestReport(dataset=ds.name, source_format="coco", source_path=str(path))
    run_ingest(conn, store, ds, read_source("coco", path), report)
    return report.inserted


def naive_ingest(conn: Connection, store: ObjectStore, ds: Dataset, path: Path) -> int:
    """The loop people write first: check, store and INSERT (autocommit) one record at a time."""
    inserted = 0
    for rec in read_source("coco", path).records:
        facts = read_image(rec.root / rec.image_path)
        if isinstance(facts, tuple) or checks.field_problems(rec, ds.classes):
            continue
        store.put_blob(facts.data, facts.sha256)
        s = checks.to_sample(rec, facts)
        conn.execute(
            "INSERT INTO verify_ai_ml_samples (dataset_id, image_path, image_sha256, width, "
            "height, annotations, review_status, group_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                ds.id,
                s.image_path,
                s.image_sha256,
                s.width,
                s.height,
                psycopg.types.json.Jsonb({"objects": s.objects}),
                s.review_status,
                s.group_key,
            ),
        )
        inserted += 1
    return inserted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--image-size", type=int, default=32, help="side of the PNGs, px")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / ".modelyard",
        help="where the source, the stores and the database go (default: beside the "
        "project's own store, .modelyard/)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    work.chmod(0o755)
    try:
        t0 = time.perf_counter()
        path = make_source(work / "source", args.records, args.image_size)
        side = args.image_size
        print(
            f"generated {args.records} records with {side}x{side} PNG images in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        print(f"this disk creates a small file in {file_create_ms(work / 'probe'):.3f} ms")
        from pgserver.postgres_server import get_server

        server = get_server(work / "pg", cleanup_mode="stop")
        admin = str(server.get_uri())
        results = {}
        for label, fn in (("modelyard ingest", modelyard_ingest), ("naive loop", naive_ingest)):
            conn, ds = fresh_dataset(admin, label.split()[0])
            store = ObjectStore(str(work / f"store-{label.split()[0]}"))
            start = time.perf_counter()
            n = fn(conn, store, ds, path)
            seconds = time.perf_counter() - start
            conn.close()
            results[label] = (n, seconds)
        print(f"\n{'':18}{'records':>9}{'seconds':>10}{'records/s':>12}")
        for label, (n, seconds) in results.items():
            print(f"{label:18}{n:>9}{seconds:>10.2f}{n / seconds:>12.0f}")
        ours, naive = (n / s for n, s in results.values())
        print(
            f"\nspeed-up over the naive loop: {ours / naive:.1f}x "
            f"(targets: >= 2000 records/s, >= 5x)"
        )
        server.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
