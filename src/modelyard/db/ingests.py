"""verify_ai_ml_ingests: one row per ingest run, with its rejected records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection, fetch_one


@dataclass(frozen=True, kw_only=True)
class IngestRun:
    dataset_id: uuid.UUID
    source_format: str
    source_path: str
    records_seen: int
    inserted: int
    unchanged: int
    rejected: int
    rejections: list[dict[str, Any]]
    started_at: datetime


def record(conn: Connection, run: IngestRun) -> uuid.UUID:
    row = fetch_one(
        conn.execute(
            "INSERT INTO verify_ai_ml_ingests (dataset_id, source_format, source_path, "
            "records_seen, inserted, unchanged, rejected, rejections, started_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                run.dataset_id,
                run.source_format,
                run.source_path,
                run.records_seen,
                run.inserted,
                run.unchanged,
                run.rejected,
                Jsonb(run.rejections),
                run.started_at,
            ),
        )
    )
    return uuid.UUID(str(row["id"]))


def latest_per_source(conn: Connection, dataset_id: uuid.UUID) -> list[dict[str, Any]]:
    """The most recent ingest run of each source path of the dataset."""
    return conn.execute(
        "SELECT DISTINCT ON (source_format, source_path) * FROM verify_ai_ml_ingests "
        "WHERE dataset_id = %s ORDER BY source_format, source_path, finished_at DESC",
        (dataset_id,),
    ).fetchall()
