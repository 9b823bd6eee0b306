"""The rows a snapshot exports, as CSV straight from PostgreSQL (COPY), with the export-time
gates evaluated in SQL: a million rows never pass through Python one by one.

Rows are ordered by image path in the "C" collation (byte order), so the same rows give the
same bytes whatever the server's locale.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from modelyard.db.connection import Connection, CsvRows, copy_csv

# The manifest's columns, in order: what a snapshot exports of each sample.
MANIFEST_SELECT = (
    ("sample_id", "id::text"),
    ("image_path", "image_path"),
    ("image_sha256", "image_sha256"),
    ("image_dhash", "image_dhash"),
    ("width", "width"),
    ("height", "height"),
    ("split", "split"),
    ("group_key", "group_key"),
    ("review_status", "review_status"),
    ("is_compliant", "is_compliant::text"),
    ("label_value", "label_value"),
    ("label_source", "label_source"),
    ("rating_count", "rating_count"),
    ("is_augmented", "is_augmented::text"),
    ("augmentation_type", "augmentation_type"),
    ("crop_x1", "crop_x1"),
    ("crop_y1", "crop_y1"),
    ("crop_x2", "crop_x2"),
    ("crop_y2", "crop_y2"),
    ("objects", "(annotations -> 'objects')::text"),
    ("metadata", "metadata::text"),
)
MANIFEST_COLUMNS = tuple(name for name, _ in MANIFEST_SELECT)
BAD_PATH = r"^$|^/|^[A-Za-z]:|\\|(^|/)\.\.(/|$)"
# '{64}' is slow in PostgreSQL's regex engine (5 s per million rows); '+' and length are not
SHA256_CHARS = r"^[0-9a-f]+$"


@dataclass(frozen=True, kw_only=True)
class Gates:
    review_statuses: Sequence[str]
    min_rating_count: int


def _reason(gates: Gates) -> sql.Composed:
    """SQL for the first export gate a row fails (NULL when it passes)."""
    statuses = sorted(gates.review_statuses)
    parts = [
        sql.SQL(
            "WHEN image_path IS NULL OR image_path ~ {} THEN 'missing or invalid image path'"
        ).format(sql.Literal(BAD_PATH)),
        sql.SQL(
            "WHEN image_sha256 IS NULL OR length(image_sha256) <> 64 OR image_sha256::text !~ {} "
            "THEN 'missing or invalid image sha256'"
        ).format(sql.Literal(SHA256_CHARS)),
        sql.SQL("WHEN NOT (review_status = ANY({})) THEN {}").format(
            sql.Literal(statuses), sql.Literal(f"review_status not in {statuses}")
        ),
    ]
    if gates.min_rating_count > 0:
        parts.append(
            sql.SQL("WHEN coalesce(rating_count, 0) < {} THEN {}").format(
                sql.Literal(gates.min_rating_count),
                sql.Literal(f"rating_count below {gates.min_rating_count}"),
            )
        )
    return sql.SQL("CASE {} END").format(sql.SQL(" ").join(parts))


def manifest_csv(
    conn: Connection, dataset_id: uuid.UUID, gates: Gates | None = None, split: str | None = None
) -> CsvRows:
    """The dataset's rows (those passing ``gates``; of one ``split`` if given) as CSV."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(name))
        for name, expr in MANIFEST_SELECT
    )
    where = [sql.SQL("dataset_id = {}").format(sql.Literal(str(dataset_id)))]
    if gates is not None:
        where.append(sql.SQL("({}) IS NULL").format(_reason(gates)))
    if split is not None:
        where.append(sql.SQL("split = {}").format(sql.Literal(split)))
    query = sql.SQL(
        'SELECT {} FROM verify_ai_ml_samples WHERE {} ORDER BY image_path COLLATE "C", id'
    ).format(columns, sql.SQL(" AND ").join(where))
    return copy_csv(conn, query)


def excluded_csv(conn: Connection, dataset_id: uuid.UUID, gates: Gates) -> CsvRows:
    """sample_id, image_path, reason for every row the gates exclude."""
    query = sql.SQL(
        "SELECT * FROM (SELECT id::text AS sample_id, image_path, {} AS reason "
        "FROM verify_ai_ml_samples WHERE dataset_id = {}) r WHERE reason IS NOT NULL "
        'ORDER BY image_path COLLATE "C", sample_id'
    ).format(_reason(gates), sql.Literal(str(dataset_id)))
    return copy_csv(conn, query)
