"""Provenance of a trained model: model_training_runs and one model_training_snapshot_labels
row per sample it was trained on, with the label as it was at snapshot time."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection, fetch_one
from modelyard.errors import StateError


@dataclass(frozen=True, kw_only=True)
class UsedSample:
    sample_id: str
    label_source: str | None = None
    label_value: float | None = None


def record_training_run(
    conn: Connection,
    *,
    model_version: str,
    params_json: Mapping[str, Any],
    samples: Iterable[UsedSample],
    notes: str | None = None,
) -> uuid.UUID:
    """Write the run and its sample rows in one transaction; returns the run id.

    ``params_json`` should hold at least the snapshot hash and the export parameters. A
    model version is recorded once: recording it again is an error naming it.
    """
    with conn.transaction():
        taken = conn.execute(
            "SELECT 1 FROM model_training_runs WHERE model_version = %s", (model_version,)
        ).fetchone()
        if taken:
            raise StateError(
                f"model version '{model_version}' already has a training run recorded; "
                "provenance is written once per version"
            )
        row = fetch_one(
            conn.execute(
                "INSERT INTO model_training_runs (model_version, params_json, notes) "
                "VALUES (%s, %s, %s) RETURNING id",
                (model_version, Jsonb(dict(params_json)), notes),
            )
        )
        run_id: uuid.UUID = row["id"]
        with conn.cursor().copy(
            "COPY model_training_snapshot_labels (training_run_id, snapshot_id, label_source, "
            "label_value) FROM STDIN"
        ) as copy:
            for s in samples:
                copy.write_row((run_id, s.sample_id, s.label_source, s.label_value))
    return run_id


def training_run(conn: Connection, model_version: str) -> dict[str, Any] | None:
    """The model_training_runs row of a model version, with its count of sample rows."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT r.*, (SELECT count(*) FROM model_training_snapshot_labels l "
        "WHERE l.training_run_id = r.id) AS samples FROM model_training_runs r "
        "WHERE r.model_version = %s",
        (model_version,),
    ).fetchone()
    return row


def samples_of_run(conn: Connection, model_version: str) -> list[dict[str, Any]]:
    """The sample rows a model version was trained on (the last link of the lineage chain)."""
    return conn.execute(
        "SELECT s.*, l.label_source AS used_label_source, l.label_value AS used_label_value "
        "FROM model_training_runs r "
        "JOIN model_training_snapshot_labels l ON l.training_run_id = r.id "
        "JOIN verify_ai_ml_samples s ON s.id = l.snapshot_id "
        "WHERE r.model_version = %s ORDER BY s.image_path",
        (model_version,),
    ).fetchall()
