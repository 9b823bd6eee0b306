"""Drift at fleet scale: every bundle and window of a day judged by `modelyard drift run
--windows 24`'s job (aggregation in PostgreSQL, PSI and bounds in Python, the next window
read on a second connection while this one is judged), beside the same PSI computed by
pulling the rows into pandas, in one run.

    python bench/drift.py [--bundles 1000] [--windows 24] [--devices 4]

Telemetry is generated straight into the tables of an embedded PostgreSQL of its own (bin
rows with COPY): ``bundles x windows x devices`` windows of the six reference features, about
100 bin rows each (10.0 M rows at the defaults). Goal on 2 cores: every bundle and window in
<= 10 s.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serving.fleet import reference_stats  # noqa: E402

from modelyard.db import connection, migrate  # noqa: E402
from modelyard.db import datasets as datasets_db  # noqa: E402
from modelyard.db import drift as drift_db  # noqa: E402
from modelyard.db.bundles import NewBundle, add_promotion_stats, reserve  # noqa: E402
from modelyard.db.connection import Connection  # noqa: E402
from modelyard.monitoring import drift, job  # noqa: E402

START = datetime(2026, 12, 1, tzinfo=UTC)


def populate(conn: Connection, args: argparse.Namespace) -> tuple[list, int]:
    dataset = datasets_db.create(conn, policy_id="bench", name="bench", classes=["car"])
    reference = reference_stats(0)
    ids = []
    for b in range(args.bundles):
        new = NewBundle(
            policy_id="bench",
            mlflow_model_name="bench",
            mlflow_model_version=str(b),
            bundle_hash=str(b),
            gate_status="PASS",
            force_reason=None,
            promoted_by="bench",
            ontology_version=None,
            schema_version="1",
            policy_ast={},
            training_dataset_id=str(dataset.id),
            git_sha=None,
            gold_eval_results={},
        )
        row, _ = reserve(conn, new, [], "bench/v{version}")
        add_promotion_stats(conn, row["id"], reference, 200)
        ids.append(row["id"])
    rng = np.random.default_rng(0)
    features = {k: np.asarray(v["counts"], float) for k, v in reference["histograms"].items()}
    windows, draws = io.StringIO(), []
    for bundle_id in ids:
        shift = rng.random() < 0.05  # one bundle in twenty drifts
        for w in range(args.windows):
            start = START + timedelta(hours=w)
            end = start + timedelta(hours=1)
            for d in range(args.devices):
                windows.write(
                    f"{bundle_id}\tdev-{d}\tcus\t{start.isoformat()}\t{end.isoformat()}\t50\tx\n"
                )
                drawn = {}
                for name, counts in features.items():
                    share = counts / counts.sum()
                    if shift and name == "brightness":
                        share = np.roll(share, -2)
                    drawn[name] = rng.multinomial(150 if name == "score" else 50, share)
                draws.append(drawn)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY verify_ai_telemetry_windows (bundle_id, device_id, customer_id, "
            "window_start, window_end, sample_count, content_sha256) FROM STDIN"
        ) as copy:
            copy.write(windows.getvalue())
        first = conn.execute("SELECT min(id) AS id FROM verify_ai_telemetry_windows").fetchone()[
            "id"
        ]
        bins = io.StringIO()
        for offset, drawn in enumerate(draws):  # COPY gave the windows consecutive ids
            for name, counts in drawn.items():
                for i, c in enumerate(counts):
                    bins.write(f"{first + offset}\t{name}\t{i}\t{c}\n")
        with cur.copy(
            "COPY verify_ai_telemetry_bins (window_id, feature, bin, count) FROM STDIN"
        ) as copy:
            copy.write(bins.getvalue())
    conn.execute("ANALYZE verify_ai_telemetry_windows")
    conn.execute("ANALYZE verify_ai_telemetry_bins")
    rows = conn.execute("SELECT count(*) AS n FROM verify_ai_telemetry_bins").fetchone()["n"]
    return ids, int(rows)


def with_pandas(conn: Connection, args: argparse.Namespace) -> tuple[float, int]:
    """The same PSI the way one would write it first: every row into pandas, group, compute."""
    start = time.perf_counter()
    query = sql.SQL(
        "SELECT w.bundle_id, w.window_start, b.feature, b.bin, b.count "
        "FROM verify_ai_telemetry_bins b JOIN verify_ai_telemetry_windows w ON w.id = b.window_id"
    )
    frame = pd.read_csv(io.BytesIO(connection.copy_csv(conn, query)))
    live = frame.groupby(["bundle_id", "window_start", "feature", "bin"])["count"].sum()
    reference = {
        k: np.asarray(v["counts"], float) for k, v in reference_stats(0)["histograms"].items()
    }
    alarms = 0
    params = drift.DriftParams()
    tests = args.bundles * args.windows * len(reference)
    alphas = drift.corrected(params, tests)
    for (_bundle, _window, feature), counts in live.groupby(level=[0, 1, 2]):
        observed = counts.to_numpy()
        result = drift.feature(feature, reference[feature], observed, alphas, params)
        alarms += result.state == drift.ALARM
    return time.perf_counter() - start, alarms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--devices", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-drift-", dir=ROOT / ".modelyard"))
    work.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(work / "pg", cleanup_mode="stop")
    try:
        admin = str(server.get_uri())
        connection.ensure_database(admin, "bench")
        url = connection.with_database(admin, "bench")
        with connection.connect(url) as conn:
            migrate.migrate(conn, migrate.discover(migrate.default_migrations_dir()))
            t0 = time.perf_counter()
            _, rows = populate(conn, args)
            print(
                f"{rows:,} bin rows ({args.bundles} bundles x {args.windows} windows x "
                f"{args.devices} devices) written in {time.perf_counter() - t0:.1f} s"
            )
            sql_seconds = 0.0
            live_counts = drift_db.live_counts

            def timed(*a: object) -> dict:
                nonlocal sql_seconds
                t = time.perf_counter()
                out = live_counts(*a)  # type: ignore[arg-type]
                sql_seconds += time.perf_counter() - t
                return out

            drift_db.live_counts = timed  # type: ignore[assignment]
            spans = [(START + timedelta(hours=w), START + timedelta(hours=w + 1))
                     for w in range(args.windows)]  # fmt: skip
            with connection.connect(url) as reader:
                t0 = time.perf_counter()
                judged = job.run_windows(conn, spans, drift.DriftParams(), "bench", reader=reader)
                ours = time.perf_counter() - t0
            alarms = sum(r.state == drift.ALARM for found in judged for r in found)
            theirs, their_alarms = with_pandas(conn, args)
        print(f"{'':<36} {'seconds':>8} {'alarms':>7}")
        print(f"{'modelyard drift (SQL + job)':<36} {ours:>8.1f} {alarms:>7}")
        print(f"{'  summing in PostgreSQL (overlapped)':<36} {sql_seconds:>8.1f}")
        print(f"{'pandas (every row pulled)':<36} {theirs:>8.1f} {their_alarms:>7}")
        print(f"goal (every bundle and window <= 10 s): {'met' if ours <= 10 else 'NOT met'}")
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
