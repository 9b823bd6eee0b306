"""verify_ai_ml_jobs: one row follows a long piece of work (a training, a tuning study).

queued -> running (progress 0..1, log lines appended) -> succeeded (metrics) | failed
(error). Each change commits on its own, so another session sees it at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection, fetch_one
from modelyard.errors import NotFoundError, StateError

FINISHED = ("succeeded", "failed", "cancelled")


def create(conn: Connection, *, kind: str, dataset_id: str | uuid.UUID | None) -> uuid.UUID:
    row = fetch_one(
        conn.execute(
            "INSERT INTO verify_ai_ml_jobs (kind, dataset_id) VALUES (%s, %s) RETURNING id",
            (kind, dataset_id),
        )
    )
    job_id: uuid.UUID = row["id"]
    return job_id


def get(conn: Connection, job_id: str | uuid.UUID) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM verify_ai_ml_jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"job {job_id}: no such job")
    return row


def start(conn: Connection, job_id: uuid.UUID, *, mlflow_run_id: str | None = None) -> None:
    _update(
        conn,
        job_id,
        "status = 'running', started_at = coalesce(started_at, now()), "
        "mlflow_run_id = coalesce(%(run)s, mlflow_run_id)",
        run=mlflow_run_id,
    )


def progress(conn: Connection, job_id: uuid.UUID, fraction: float, line: str = "") -> None:
    """Record progress (clamped to 0..1) and append ``line`` to the job's log."""
    _update(
        conn,
        job_id,
        "progress = greatest(0, least(1, %(p)s)), logs = logs || %(line)s",
        p=fraction,
        line=f"{line}\n" if line else "",
    )


def succeed(
    conn: Connection, job_id: uuid.UUID, metrics: Mapping[str, float], mlflow_run_id: str | None
) -> None:
    _update(
        conn,
        job_id,
        "status = 'succeeded', progress = 1, metrics = %(m)s, finished_at = now(), "
        "mlflow_run_id = coalesce(%(run)s, mlflow_run_id)",
        m=Jsonb(dict(metrics)),
        run=mlflow_run_id,
    )


def fail(conn: Connection, job_id: uuid.UUID, error: str, mlflow_run_id: str | None) -> None:
    _update(
        conn,
        job_id,
        "status = 'failed', error = %(e)s, finished_at = now(), "
        "mlflow_run_id = coalesce(%(run)s, mlflow_run_id)",
        e=error or "failed without a message",
        run=mlflow_run_id,
    )


def cancel(conn: Connection, job_id: uuid.UUID, reason: str, mlflow_run_id: str | None) -> None:
    """Stopped on purpose (a pruned tuning trial): not a failure, not a success."""
    _update(
        conn,
        job_id,
        "status = 'cancelled', error = %(e)s, finished_at = now(), "
        "mlflow_run_id = coalesce(%(run)s, mlflow_run_id)",
        e=reason,
        run=mlflow_run_id,
    )


def _update(conn: Connection, job_id: uuid.UUID, assignments: str, **values: Any) -> None:
    query = (
        f"UPDATE verify_ai_ml_jobs SET {assignments} "  # noqa: S608 - assignments are literals
        "WHERE id = %(id)s AND status NOT IN ('succeeded', 'failed', 'cancelled') RETURNING id"
    )
    if conn.execute(query, {**values, "id": job_id}).fetchone() is None:
        job = get(conn, job_id)
        raise StateError(f"job {job_id} is already {job['status']}; a finished job is not changed")
