"""Dataset versions: copy a dataset whole into a new dataset row that names its parent, then
correct labels in the copy. Both happen in the caller's one transaction, so a version is
either complete, corrections and all, or not there."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection, fetch_one
from modelyard.db.datasets import Dataset
from modelyard.errors import StateError

# every sample column but id, dataset_id and created_at: what a version copies
COPIED = (
    "image_path", "image_sha256", "image_dhash", "width", "height", "is_compliant",
    "annotations", "split", "review_status", "is_augmented", "augmentation_type", "group_key",
    "label_value", "label_source", "rating_count", "crop_x1", "crop_y1", "crop_x2", "crop_y2",
    "metadata",
)  # fmt: skip
CORRECTABLE = ("annotations", "is_compliant", "label_value")


def create_version(conn: Connection, parent: Dataset, name: str) -> tuple[uuid.UUID, int, int]:
    """A new dataset ``name`` (status collecting) holding a copy of every sample of
    ``parent``: (its id, its version number, samples copied)."""
    version = (
        int(
            fetch_one(
                conn.execute(
                    "SELECT version FROM verify_ai_ml_datasets WHERE id = %s", (parent.id,)
                )
            )["version"]
        )
        + 1
    )
    try:
        row = fetch_one(
            conn.execute(
                "INSERT INTO verify_ai_ml_datasets "
                "(policy_id, name, classes, ontology_version, parent_id, version) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    parent.policy_id,
                    name,
                    Jsonb(list(parent.classes)),
                    parent.ontology_version,
                    parent.id,
                    version,
                ),
            )
        )
    except psycopg.errors.UniqueViolation as exc:
        raise StateError(
            f"dataset '{parent.policy_id}/{name}' already exists; pass another --name"
        ) from exc
    columns = ", ".join(COPIED)
    copied = conn.execute(
        f"INSERT INTO verify_ai_ml_samples (dataset_id, {columns}) "  # noqa: S608 - fixed names
        f"SELECT %s, {columns} FROM verify_ai_ml_samples WHERE dataset_id = %s",
        (row["id"], parent.id),
    ).rowcount
    return row["id"], version, copied


def correct(
    conn: Connection, dataset_id: uuid.UUID, image_path: str, fields: Mapping[str, Any],
    source: str,
) -> bool:  # fmt: skip
    """Set ``fields`` (annotations, is_compliant, label_value) on one sample, mark it
    approved and its label's source; False when the dataset has no such image."""
    unknown = sorted(set(fields) - set(CORRECTABLE))
    if unknown:
        raise ValueError(f"{unknown[0]} is not a correctable sample field")
    values = [Jsonb(v) if k == "annotations" else v for k, v in fields.items()]
    sets = ", ".join(f"{k} = %s" for k in fields)
    cur = conn.execute(
        f"UPDATE verify_ai_ml_samples SET {sets}, review_status = 'approved', "  # noqa: S608
        "label_source = %s WHERE dataset_id = %s AND image_path = %s",
        (*values, source, dataset_id, image_path),
    )
    return cur.rowcount == 1
