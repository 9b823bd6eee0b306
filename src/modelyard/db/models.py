"""verify_ai_ml_models: one row per registered model version — its formats' artifact paths
and sha256s, its test metrics, and the MLflow name and version that hold it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from modelyard.db.connection import Connection, fetch_one

COLUMNS = (
    "dataset_id", "job_id", "base_architecture", "onnx_path", "tflite_path", "coreml_path",
    "sha256_onnx", "sha256_tflite", "sha256_coreml", "ontology_version", "schema_version",
    "accuracy", "precision_score", "recall", "f1_score", "map50", "map50_95",
    "inference_time_ms", "mlflow_model_name", "mlflow_model_version",
)  # fmt: skip


def record(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """Insert the row for a model version, or return the one already there (a re-run)."""
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        raise ValueError(f"verify_ai_ml_models has no column {unknown[0]}")
    names = [c for c in COLUMNS if c in values]
    placeholders = ", ".join(["%s"] * len(names))
    with conn.transaction():
        row = conn.execute(
            f"INSERT INTO verify_ai_ml_models ({', '.join(names)}) VALUES ({placeholders}) "  # noqa: S608 - fixed column names
            "ON CONFLICT (mlflow_model_name, mlflow_model_version) DO NOTHING RETURNING id",
            [values[c] for c in names],
        ).fetchone()
        if row is None:
            row = fetch_one(
                conn.execute(
                    "SELECT id FROM verify_ai_ml_models "
                    "WHERE mlflow_model_name = %s AND mlflow_model_version = %s",
                    (values["mlflow_model_name"], values["mlflow_model_version"]),
                )
            )
    model_id: uuid.UUID = row["id"]
    return model_id


def find(conn: Connection, name: str, version: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "SELECT * FROM verify_ai_ml_models WHERE mlflow_model_name = %s "
        "AND mlflow_model_version = %s",
        (name, version),
    ).fetchone()
    return row
