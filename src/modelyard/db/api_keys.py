"""verify_ai_api_keys: device API keys, stored as the sha256 of the secret (shown once)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg.errors import CheckViolation

from modelyard.db.connection import Connection, fetch_one
from modelyard.errors import ConfigError, NotFoundError

SCOPES = ("models:read", "telemetry:write", "drift:read")
_COLUMNS = "id, customer_id, name, key_prefix, scopes, created_at, revoked_at"


def insert(
    conn: Connection, *, customer_id: str, key_hash: str, key_prefix: str,
    scopes: Sequence[str], name: str | None,
) -> dict[str, Any]:  # fmt: skip
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        bad = unknown[0] if unknown else ""
        raise ConfigError(f"--scopes: '{bad}' is not a scope; valid: {', '.join(SCOPES)}")
    try:
        return fetch_one(
            conn.execute(
                f"INSERT INTO verify_ai_api_keys (customer_id, key_hash, key_prefix, scopes, name) "  # noqa: S608 - fixed columns
                f"VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (customer_id, key_hash, key_prefix, sorted(set(scopes)), name),
            )
        )
    except CheckViolation as exc:
        raise ConfigError(f"--customer '{customer_id}': a customer id must not be blank") from exc


def by_hash(conn: Connection, key_hash: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        f"SELECT {_COLUMNS} FROM verify_ai_api_keys WHERE key_hash = %s",  # noqa: S608
        (key_hash,),
    ).fetchone()
    return row


def revoke(conn: Connection, ref: str) -> dict[str, Any]:
    """Revoke a key by its id or its shown prefix; revoking twice keeps the first time."""
    try:
        key_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        key_id = None
    rows = conn.execute(
        f"UPDATE verify_ai_api_keys SET revoked_at = coalesce(revoked_at, now()) "  # noqa: S608
        f"WHERE id = %s OR key_prefix = %s RETURNING {_COLUMNS}",
        (key_id, ref),
    ).fetchall()
    if len(rows) != 1:
        raise NotFoundError(
            f"API key '{ref}': {'no such key' if not rows else 'several keys match'}; "
            "`modelyard keys list` shows ids and prefixes"
        )
    return rows[0]


def list_all(conn: Connection, customer_id: str | None = None) -> list[dict[str, Any]]:
    return conn.execute(
        f"SELECT {_COLUMNS} FROM verify_ai_api_keys "  # noqa: S608
        "WHERE %(c)s::text IS NULL OR customer_id = %(c)s ORDER BY created_at",
        {"c": customer_id},
    ).fetchall()
