"""Telemetry windows from devices: one row per (device, bundle, window), its histogram bins
and class counts as child rows, so the drift job sums them in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from modelyard.db.connection import Connection, fetch_one


@dataclass(frozen=True, kw_only=True)
class Window:
    bundle_id: uuid.UUID
    device_id: str
    customer_id: str
    api_key_id: uuid.UUID | None
    window_start: datetime
    window_end: datetime
    sample_count: int
    content_sha256: str
    bins: Sequence[tuple[str, int, int]]  # (feature, bin index, count)
    classes: Sequence[tuple[str, int]]  # (class name, count)


def store(conn: Connection, window: Window) -> tuple[str, int]:
    """Insert a window with its bins in one transaction. Returns (outcome, window id):
    ``created``; ``duplicate`` (the same window sent again with the same content: nothing
    written); ``conflict`` (the same device, bundle and window, other content: nothing
    written)."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO verify_ai_telemetry_windows (bundle_id, device_id, customer_id, "
            "api_key_id, window_start, window_end, sample_count, content_sha256) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (device_id, bundle_id, window_start, window_end) DO NOTHING "
            "RETURNING id",
            (
                window.bundle_id, window.device_id, window.customer_id, window.api_key_id,
                window.window_start, window.window_end, window.sample_count,
                window.content_sha256,
            ),
        ).fetchone()  # fmt: skip
        if row is None:
            found = fetch_one(
                conn.execute(
                    "SELECT id, content_sha256 FROM verify_ai_telemetry_windows "
                    "WHERE device_id = %s AND bundle_id = %s AND window_start = %s "
                    "AND window_end = %s",
                    (window.device_id, window.bundle_id, window.window_start, window.window_end),
                )
            )
            same = found["content_sha256"] == window.content_sha256
            return ("duplicate" if same else "conflict"), int(found["id"])
        window_id = int(row["id"])
        if window.bins:
            features, indexes, counts = zip(*window.bins, strict=True)
            conn.execute(
                "INSERT INTO verify_ai_telemetry_bins (window_id, feature, bin, count) "
                "SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[])",
                (window_id, list(features), list(indexes), list(counts)),
            )
        if window.classes:
            names, totals = zip(*window.classes, strict=True)
            conn.execute(
                "INSERT INTO verify_ai_telemetry_classes (window_id, class_name, count) "
                "SELECT %s, * FROM unnest(%s::text[], %s::bigint[])",
                (window_id, list(names), list(totals)),
            )
    return "created", window_id
