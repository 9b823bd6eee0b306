"""Dataset scale: split + snapshot + validate of 1,000,000 sample rows, and the near-duplicate
search over 100,000 perceptual hashes, each beside a slower way of doing the same work.

Rows are metadata only (no images): random sha256 and dHash, one or two boxes, 20,000 groups,
three slice keys. Targets: split + snapshot + validate under 60 s on 2 cores; near-duplicate
search under 10 s.

    python bench/dataset_scale.py [--rows 1000000] [--hashes 100000]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelyard.datasets import snapshot, splits
from modelyard.db import connection, migrate
from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.quality import leakage, validate
from modelyard.quality.rules import ValidateParams

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["car", "person", "sign"]
STRATIFY = ("class", "stream", "road_type", "scenario")


def fill(conn: Connection, dataset_id: object, rows: int) -> None:
    """COPY ``rows`` synthetic samples (not timed)."""
    rng = np.random.default_rng(0)
    streams = np.array(["front", "rear", "cabin"])
    scenarios = np.array(["day", "dusk", "night"])
    roads = np.array(["urban", "highway", "rural"])
    step = 100_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        sha = rng.integers(0, 2**63, (n, 4), dtype=np.int64)
        dh = rng.integers(0, 2**63, n, dtype=np.int64)
        cls = rng.integers(0, 3, (n, 2))
        two = rng.random(n) < 0.5
        review = np.where(rng.random(n) < 0.95, "approved", "pending")
        buf = io.StringIO()
        for k in range(n):
            i = start + k
            g = i // 50
            objs = [{"class": CLASSES[cls[k, 0]], "bbox": [10, 10, 100, 80]}]
            if two[k]:
                objs.append({"class": CLASSES[cls[k, 1]], "bbox": [300, 200, 60, 120]})
            meta = {
                "stream": streams[g % 3],
                "scenario": scenarios[(i // 7) % 3],
                "road_type": roads[(g // 3) % 3],
            }
            buf.write(
                f"{dataset_id}\timg/{i:07d}.jpg\t{''.join(f'{v:016x}' for v in sha[k])}\t"
                f"{dh[k]:016x}\t640\t480\t{json.dumps({'objects': objs})}\t{review[k]}\t"
                f"g{g:05d}\t{json.dumps(meta)}\n"
            )
        with conn.cursor().copy(
            "COPY verify_ai_ml_samples (dataset_id, image_path, image_sha256, image_dhash, "
            "width, height, annotations, review_status, group_key, metadata) FROM STDIN"
        ) as copy:
            copy.write(buf.getvalue())


def timed(label: str, results: dict[str, float], fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    results[label] = time.perf_counter() - start
    print(f"  {label:44}{results[label]:8.1f} s")
    return out


def pandas_gx_peer(conn: Connection, dataset_id: object) -> pd.DataFrame:
    """The usual way: SELECT the rows into pandas (no COPY), derive the leakage columns with
    groupby, and hand the frame to the same GX suite."""
    rows = conn.execute(
        "SELECT id::text AS sample_id, image_path, image_sha256, image_dhash, width, height, "
        "split, group_key, review_status, annotations, metadata "
        "FROM verify_ai_ml_samples WHERE dataset_id = %s AND review_status = 'approved'",
        (dataset_id,),
    ).fetchall()
    frame = pd.DataFrame(rows)
    frame["group_splits"] = frame.groupby("group_key")["split"].transform("nunique")
    frame["sha256_splits"] = frame.groupby("image_sha256")["split"].transform("nunique")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hashes", type=int, default=100_000)
    parser.add_argument("--brute-sample", type=int, default=5_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-scale-"))
    work.chmod(0o755)
    results: dict[str, float] = {}
    try:
        admin = connection.embedded_admin_url(work / "pg")  # configured as `modelyard db up` does
        connection.ensure_database(admin, "scale")
        conn = connection.connect(connection.with_database(admin, "scale"))
        migrate.migrate(conn, migrate.discover(migrate.default_migrations_dir()))
        ds = datasets_db.create(conn, policy_id="bench", name="scale", classes=CLASSES)
        t0 = time.perf_counter()
        fill(conn, ds.id, args.rows)
        conn.execute("VACUUM ANALYZE verify_ai_ml_samples")
        print(f"loaded {args.rows:,} sample rows in {time.perf_counter() - t0:.1f} s (not timed)\n")

        print(f"modelyard, {args.rows:,} rows:")
        request = splits.SplitRequest(ratios=(0.7, 0.15, 0.15), seed=0)
        timed("split: read + plan, in memory (no write)", results, _plan_only, conn, ds, request)
        plan = timed(
            "split: the command (read, plan, write)",
            results,
            splits.split_dataset,
            conn,
            ds,
            request,
            STRATIFY,
        )[0]
        timed(
            "snapshot (COPY out, gates, manifests)",
            results,
            lambda: _snapshot(conn, ds, work / "snapshot"),
        )
        report = timed(
            "validate (read, derive, near-dups, GX)",
            results,
            _validate,
            work / "snapshot" / "manifest_full.csv",
        )
        keys = (
            "split: the command (read, plan, write)",
            "snapshot (COPY out, gates, manifests)",
            "validate (read, derive, near-dups, GX)",
        )
        total = sum(results[k] for k in keys)
        write = results[keys[0]] - results["split: read + plan, in memory (no write)"]
        print(f"  {'total':44}{total:8.1f} s   (target < 60 s)")
        print(
            f"  {'  of which writing the split (UPDATE)':44}{write:8.1f} s   "
            f"({plan.changed:,} rows changed split)"
        )
        print(
            f"  gate passed: {report.passed}; critical: "
            f"{[(f.check, f.unexpected_count) for f in report.critical]}"
        )

        print("\npeer: SELECT into pandas + groupby leakage columns + the same GX suite")
        frame = timed("fetch and derive", results, pandas_gx_peer, conn, ds.id)
        facts = frame[
            [
                "sample_id",
                "image_path",
                "split",
                "group_key",
                "review_status",
                "width",
                "height",
                "group_splits",
                "sha256_splits",
            ]
        ]
        timed("GX samples suite (no near-duplicate check)", results, _peer_gx, facts)
        peer = results["fetch and derive"] + results["GX samples suite (no near-duplicate check)"]
        print(f"  {'peer total (without near-duplicates)':44}{peer:8.1f} s")
        conn.close()
        connection.stop_embedded(work / "pg")

        print(f"\nnear-duplicate search, {args.hashes:,} dHashes, Hamming <= 6:")
        _near_duplicates(args.hashes, args.brute_sample)
    finally:
        connection.stop_embedded(work / "pg")
        shutil.rmtree(work, ignore_errors=True)


def _plan_only(conn: Connection, ds: datasets_db.Dataset, request: splits.SplitRequest) -> None:
    splits.plan_dataset(conn, ds, request, STRATIFY).summary()


def _snapshot(conn: Connection, ds: datasets_db.Dataset, out: Path) -> snapshot.Snapshot:
    snap = snapshot.build(conn, ds, snapshot.SnapshotParams())
    snapshot.write(snap, out)
    return snap


def _validate(manifest: Path) -> validate.QualityReport:
    """What the validate stage does: read the manifest file, derive, run the suites (the GX
    import included: the stage pays it too)."""
    return validate.validate(
        manifest,
        dataset="scale",
        classes=tuple(CLASSES),
        params=ValidateParams(),
        suites_dir=ROOT / "expectations",
    )


def _peer_gx(frame: pd.DataFrame) -> None:
    from modelyard.quality.expectations import SuiteRun, run_suites

    spec = json.loads((ROOT / "expectations" / "samples.json").read_text())
    keep = {
        "sample_id",
        "split",
        "review_status",
        "width",
        "height",
        "group_splits",
        "sha256_splits",
    }
    spec["expectations"] = [e for e in spec["expectations"] if e["kwargs"]["column"] in keep]
    path = Path(tempfile.mkdtemp()) / "samples.json"
    path.write_text(json.dumps(spec))
    run_suites([SuiteRun(path=path, frame=frame, id_columns=("sample_id",))], {}, None)
    shutil.rmtree(path.parent)


def _near_duplicates(n: int, sample: int) -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    planted = 100
    for k in range(planted):
        flips = sum(1 << int(b) for b in rng.choice(64, 1 + k % 6, replace=False))
        values[n - 1 - k] = values[k] ^ np.uint64(flips)
    start = time.perf_counter()
    found = leakage.near_duplicate_pairs(values, 6)
    ours = time.perf_counter() - start
    print(
        f"  modelyard banded search: {ours:8.2f} s, {len(found.left)} pairs "
        f"({planted} planted)   (target < 10 s)"
    )
    sub = values[:sample]
    start = time.perf_counter()
    for i in range(len(sub)):
        np.bitwise_count(sub[i] ^ sub[i + 1 :])
    brute = time.perf_counter() - start
    scale = (n / sample) ** 2
    print(
        f"  brute-force pairwise:    {brute:8.2f} s on {sample:,} hashes -> "
        f"{brute * scale:8.1f} s extrapolated to {n:,} ({brute * scale / ours:.0f}x slower)"
    )


if __name__ == "__main__":
    main()
