"""verify_ai_policies and verify_ai_ml_datasets: create, find, list, change status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection, fetch_one
from modelyard.errors import AmbiguousNameError, NotFoundError, StateError, TransitionError

STATUSES = ("collecting", "ready", "training", "archived")


@dataclass(frozen=True, kw_only=True)
class Dataset:
    id: uuid.UUID
    policy_id: str
    name: str
    status: str
    classes: tuple[str, ...]
    ontology_version: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Dataset:
        return cls(
            id=row["id"],
            policy_id=row["policy_id"],
            name=row["name"],
            status=row["status"],
            classes=tuple(row["classes"]),
            ontology_version=row["ontology_version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


_COLUMNS = "id, policy_id, name, status, classes, ontology_version, created_at, updated_at"


def ensure_policy(conn: Connection, policy_id: str) -> bool:
    """Create the policy row if it is missing; True when it was created."""
    cur = conn.execute(
        "INSERT INTO verify_ai_policies (policy_id, name) VALUES (%s, %s) "
        "ON CONFLICT (policy_id) DO NOTHING",
        (policy_id, policy_id),
    )
    return cur.rowcount == 1


def create(conn: Connection, *, policy_id: str, name: str, classes: list[str]) -> Dataset:
    """Insert a dataset (and its policy if new); a duplicate name for the policy raises."""
    with conn.transaction():
        ensure_policy(conn, policy_id)
        try:
            row = fetch_one(
                conn.execute(
                    f"INSERT INTO verify_ai_ml_datasets (policy_id, name, classes) "  # noqa: S608
                    f"VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
                    (policy_id, name, Jsonb(classes)),
                )
            )
        except psycopg.errors.UniqueViolation as exc:
            raise StateError(
                f"dataset '{name}' already exists for policy '{policy_id}'; "
                "choose another --name, or pass --exist-ok to reuse it"
            ) from exc
        except psycopg.errors.CheckViolation as exc:
            raise StateError(
                f"'{policy_id}/{name}': names start with a letter or digit and use only "
                "letters, digits, '.', '_' and '-'"
            ) from exc
    return Dataset.from_row(row)


def find(conn: Connection, ref: str) -> Dataset:
    """A dataset by id, by name, or by ``policy/name``."""
    params: tuple[Any, ...]
    if _is_uuid(ref):
        where, params = "id = %s", (ref,)
    elif "/" in ref:
        policy_id, name = ref.split("/", 1)
        where, params = "policy_id = %s AND name = %s", (policy_id, name)
    else:
        where, params = "name = %s", (ref,)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM verify_ai_ml_datasets WHERE {where}",  # noqa: S608
        params,
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no dataset '{ref}'; `modelyard dataset list` shows the datasets")
    if len(rows) > 1:
        names = ", ".join(f"{r['policy_id']}/{r['name']} ({r['id']})" for r in rows)
        raise AmbiguousNameError(f"'{ref}' names several datasets: {names}; use policy/name")
    return Dataset.from_row(rows[0])


def list_all(conn: Connection) -> list[dict[str, Any]]:
    """Every dataset with its sample count, newest first."""
    return conn.execute(
        f"""
        SELECT {", ".join("d." + c.strip() for c in _COLUMNS.split(","))},
               count(s.id) AS samples
        FROM verify_ai_ml_datasets d LEFT JOIN verify_ai_ml_samples s ON s.dataset_id = d.id
        GROUP BY d.id ORDER BY d.created_at DESC
        """  # noqa: S608
    ).fetchall()


def allowed_transitions(conn: Connection, from_status: str) -> list[str]:
    rows = conn.execute(
        "SELECT to_status FROM verify_ai_ml_dataset_transitions WHERE from_status = %s "
        "ORDER BY to_status",
        (from_status,),
    ).fetchall()
    return [str(r["to_status"]) for r in rows]


def set_status(conn: Connection, dataset: Dataset, to_status: str) -> Dataset:
    """Move a dataset to ``to_status``; the schema's transition table decides what is legal."""
    if to_status not in STATUSES:
        raise TransitionError(
            f"unknown status '{to_status}'; the statuses are {', '.join(STATUSES)}"
        )
    try:
        with conn.transaction():
            row = conn.execute(
                f"UPDATE verify_ai_ml_datasets SET status = %s WHERE id = %s "  # noqa: S608
                f"RETURNING {_COLUMNS}",
                (to_status, dataset.id),
            ).fetchone()
    except psycopg.errors.CheckViolation as exc:
        allowed = allowed_transitions(conn, dataset.status) or ["nothing"]
        raise TransitionError(
            f"dataset '{dataset.name}' cannot go from {dataset.status} to {to_status}; "
            f"from {dataset.status} it can go to: {', '.join(allowed)}"
        ) from exc
    if row is None:
        raise NotFoundError(f"dataset {dataset.id} no longer exists")
    return Dataset.from_row(row)


def add_classes(conn: Connection, dataset: Dataset, classes: list[str]) -> Dataset:
    """Append new class names to the ontology (existing ids keep their position)."""
    new = [c for c in dict.fromkeys(classes) if c not in dataset.classes]
    if not new:
        return dataset
    merged = [*dataset.classes, *new]
    row = fetch_one(
        conn.execute(
            f"UPDATE verify_ai_ml_datasets SET classes = %s, "  # noqa: S608
            f"ontology_version = (ontology_version::int + 1)::text "
            f"WHERE id = %s RETURNING {_COLUMNS}",
            (Jsonb(merged), dataset.id),
        )
    )
    return Dataset.from_row(row)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
