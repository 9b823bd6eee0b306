"""What the drift job reads (telemetry summed per bundle over a window, the promotion
references) and writes (one ``snapshot_type='live'`` row per bundle and window)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection


def live_counts(
    conn: Connection, start: datetime, end: datetime
) -> dict[uuid.UUID, dict[str, Any]]:
    """Per bundle with telemetry windows starting in [start, end): devices, windows, images,
    each feature's summed bins and the summed class counts."""
    out: dict[uuid.UUID, dict[str, Any]] = {}
    window = {"start": start, "end": end}
    for r in conn.execute(
        "SELECT w.bundle_id, count(DISTINCT w.device_id) AS devices, count(*) AS windows, "
        "sum(w.sample_count)::bigint AS images FROM verify_ai_telemetry_windows w "
        "WHERE w.window_start >= %(start)s AND w.window_start < %(end)s GROUP BY w.bundle_id",
        window,
    ):
        out[r["bundle_id"]] = {"devices": r["devices"], "windows": r["windows"],
                               "images": int(r["images"]), "bins": {}, "classes": {}}  # fmt: skip
    for r in conn.execute(
        "SELECT bundle_id, feature, array_agg(bin ORDER BY bin) AS bins, "
        "array_agg(count ORDER BY bin) AS counts FROM ("
        "SELECT w.bundle_id, b.feature, b.bin, sum(b.count)::bigint AS count "
        "FROM verify_ai_telemetry_bins b JOIN verify_ai_telemetry_windows w ON w.id = b.window_id "
        "WHERE w.window_start >= %(start)s AND w.window_start < %(end)s GROUP BY 1, 2, 3"
        ") summed GROUP BY 1, 2",
        window,
    ):
        out[r["bundle_id"]]["bins"][r["feature"]] = dict(zip(r["bins"], r["counts"], strict=True))
    for r in conn.execute(
        "SELECT w.bundle_id, c.class_name, sum(c.count)::bigint AS count "
        "FROM verify_ai_telemetry_classes c JOIN verify_ai_telemetry_windows w "
        "ON w.id = c.window_id WHERE w.window_start >= %(start)s AND w.window_start < %(end)s "
        "GROUP BY 1, 2",
        window,
    ):
        out[r["bundle_id"]]["classes"][r["class_name"]] = int(r["count"])
    return out


def references(
    conn: Connection, bundle_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Each bundle's promotion statistics (bundles without any are left out)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (bundle_id) bundle_id, stats, sample_count "
        "FROM verify_ai_model_reference_stats WHERE snapshot_type = 'promotion' "
        "AND bundle_id = ANY(%s) ORDER BY bundle_id, created_at",
        (list(bundle_ids),),
    ).fetchall()
    return {r["bundle_id"]: r for r in rows}


def active_bundles(conn: Connection) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, policy_id, bundle_version, bundle_tier, weight FROM verify_ai_model_bundles "
        "WHERE is_active ORDER BY policy_id, bundle_tier"
    ).fetchall()


def bundle_labels(
    conn: Connection, bundle_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, policy_id, bundle_version, bundle_tier, is_active, gold_eval_results "
        "FROM verify_ai_model_bundles WHERE id = ANY(%s)",
        (list(bundle_ids),),
    ).fetchall()
    return {r["id"]: r for r in rows}


@dataclass(frozen=True, kw_only=True)
class LiveRow:
    bundle_id: uuid.UUID
    window_start: datetime
    window_end: datetime
    stats: dict[str, Any]
    sample_count: int
    drift_score: float | None


def store_live(conn: Connection, rows: Sequence[LiveRow]) -> None:
    """Write each window's live row, or replace it (a re-run, or late telemetry), in one
    pipelined batch."""
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO verify_ai_model_reference_stats (bundle_id, snapshot_type, stats, "
            "sample_count, drift_score, window_start, window_end) "
            "VALUES (%s, 'live', %s, %s, %s, %s, %s) "
            "ON CONFLICT (bundle_id, window_start, window_end) WHERE snapshot_type = 'live' "
            "DO UPDATE SET stats = EXCLUDED.stats, sample_count = EXCLUDED.sample_count, "
            "drift_score = EXCLUDED.drift_score, created_at = now()",
            [
                (
                    r.bundle_id,
                    Jsonb(r.stats),
                    r.sample_count,
                    r.drift_score,
                    r.window_start,
                    r.window_end,
                )
                for r in rows
            ],
        )


def live_rows(conn: Connection, bundle_id: uuid.UUID, limit: int = 24) -> list[dict[str, Any]]:
    """The bundle's latest live rows, newest first."""
    return conn.execute(
        "SELECT * FROM verify_ai_model_reference_stats WHERE bundle_id = %s "
        "AND snapshot_type = 'live' ORDER BY window_end DESC LIMIT %s",
        (bundle_id, limit),
    ).fetchall()


def latest_state(conn: Connection, bundle_id: uuid.UUID) -> dict[str, Any] | None:
    rows = live_rows(conn, bundle_id, 1)
    return rows[0] if rows else None
