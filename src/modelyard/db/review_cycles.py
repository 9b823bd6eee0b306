"""Review cycles: each cycle's metrics per model version, and the last cycle of an earlier
version of the same policy (what a new cycle is compared with)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection


def record(
    conn: Connection, *, bundle: dict[str, Any], labelled: int, metrics: dict[str, Any],
    review_set: int,
) -> int:  # fmt: skip
    row = conn.execute(
        "INSERT INTO verify_ai_review_cycles (policy_id, bundle_id, bundle_version, "
        "model_version, labelled, metrics, review_set) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (
            bundle["policy_id"], bundle["id"], bundle["bundle_version"],
            f"{bundle['policy_id']}/v{bundle['bundle_version']}", labelled, Jsonb(metrics),
            review_set,
        ),
    ).fetchone()  # fmt: skip
    return int(row["id"]) if row else 0


def previous(conn: Connection, policy_id: str, bundle_version: int) -> dict[str, Any] | None:
    """The latest cycle of the policy's newest version below ``bundle_version``."""
    found: dict[str, Any] | None = conn.execute(
        "SELECT * FROM verify_ai_review_cycles WHERE policy_id = %s AND bundle_version < %s "
        "ORDER BY bundle_version DESC, created_at DESC, id DESC LIMIT 1",
        (policy_id, bundle_version),
    ).fetchone()
    return found


def in_windows(
    conn: Connection, bundle_id: uuid.UUID, windows: Sequence[tuple[datetime, datetime]]
) -> list[dict[str, Any]]:
    """The bundle's inferences scored in any of ``windows`` ([start, end)), with their
    sample's image path and labels where the image is a dataset sample."""
    if not windows:
        return []
    return conn.execute(
        "SELECT i.id, i.sample_id, i.source, i.score, i.raw_score, i.decision, i.outputs, "
        "i.scored_at, s.image_path, s.split, s.annotations, s.is_compliant, s.label_value, "
        "s.metadata, s.group_key FROM verify_ai_inferences i "
        "LEFT JOIN verify_ai_ml_samples s ON s.id = i.sample_id "
        "JOIN unnest(%s::timestamptz[], %s::timestamptz[]) AS w(start_at, end_at) "
        "ON i.scored_at >= w.start_at AND i.scored_at < w.end_at "
        "WHERE i.bundle_id = %s ORDER BY i.scored_at, i.id",
        ([w[0] for w in windows], [w[1] for w in windows], bundle_id),
    ).fetchall()
