"""The rows a snapshot exports, as CSV lines straight from PostgreSQL (COPY), with the
export-time gates evaluated in SQL: one pass reads every row with a code saying which gate
it fails or which split it is in, and the manifests are cut from the lines by that code.

Rows come in image path order; the column compares bytes (collation "C"), so the same rows
give the same bytes whatever the server's locale.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from modelyard.db.connection import Connection, copy_lines, plan_for_bulk_read
from modelyard.errors import DatabaseError

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
# The rules of the schema's own checks (migration 0008), written without regular expressions,
# which cost seconds per million rows: an empty, absolute or drive-letter path, a backslash,
# a '..' component; a sha256 that is not 64 lower-case hex digits.
BAD_PATH = (
    "image_path IS NULL OR image_path = '' OR left(image_path, 1) = '/' "
    "OR (substr(image_path, 2, 1) = ':' AND (left(image_path, 1) BETWEEN 'A' AND 'Z' "
    "OR left(image_path, 1) BETWEEN 'a' AND 'z')) "
    "OR strpos(image_path, '\\') > 0 OR '/' || image_path || '/' LIKE '%/../%'"
)
BAD_SHA256 = (
    "image_sha256 IS NULL OR length(image_sha256) <> 64 "
    "OR ltrim(image_sha256, '0123456789abcdef') <> ''"
)


@dataclass(frozen=True, kw_only=True)
class Gates:
    review_statuses: Sequence[str]
    min_rating_count: int

    def reasons(self) -> dict[str, str]:
        """Code letter -> the reason a row fails that gate, in the order they are tested."""
        statuses = sorted(self.review_statuses)
        out = {
            "p": "missing or invalid image path",
            "s": "missing or invalid image sha256",
            "r": f"review_status not in {statuses}",
        }
        if self.min_rating_count > 0:
            out["c"] = f"rating_count below {self.min_rating_count}"
        return out


# Code letters of the rows that pass every gate: their split.
SPLIT_CODES = {"t": "train", "v": "validation", "e": "test", "-": None}


def _code(gates: Gates) -> sql.Composed:
    """SQL for one letter per row: the first gate it fails, else its split (SPLIT_CODES)."""
    tests = {
        "p": sql.SQL(BAD_PATH),
        "s": sql.SQL(BAD_SHA256),
        "r": sql.SQL("NOT (review_status = ANY({}))").format(
            sql.Literal(sorted(gates.review_statuses))
        ),
        "c": sql.SQL("coalesce(rating_count, 0) < {}").format(sql.Literal(gates.min_rating_count)),
    }
    whens = [
        sql.SQL("WHEN {} THEN {}").format(tests[code], sql.Literal(code))
        for code in gates.reasons()
    ]
    whens += [
        sql.SQL("WHEN split = {} THEN {}").format(sql.Literal(split), sql.Literal(code))
        for code, split in SPLIT_CODES.items()
        if split is not None
    ]
    return sql.SQL("CASE {} ELSE '-' END").format(sql.SQL(" ").join(whens))


@dataclass(frozen=True, kw_only=True)
class DatasetRows:
    """Every row of a dataset as manifest CSV lines in path order, and one code per row."""

    header: bytes
    lines: list[bytes]  # without their line end
    codes: str  # a letter of Gates.reasons() or SPLIT_CODES per line


def dataset_rows(conn: Connection, dataset_id: uuid.UUID, gates: Gates) -> DatasetRows:
    """The dataset's rows as manifest CSV lines (one COPY, byte order of image_path), each
    with its code: COPY writes the code as a last column, cut off here (a single letter is
    never quoted, so every line ends in ``,X`` and a newline). Call inside a transaction."""
    columns = sql.SQL(", ").join(
        [
            *(
                sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(name))
                for name, expr in MANIFEST_SELECT
            ),
            sql.SQL("{} AS row_code").format(_code(gates)),
        ]
    )
    plan_for_bulk_read(conn)
    lines = copy_lines(
        conn,
        sql.SQL('SELECT {} FROM {} WHERE dataset_id = {} ORDER BY image_path COLLATE "C"').format(
            columns, _TABLE, sql.Literal(str(dataset_id))
        ),
    )
    if not lines[0].endswith(b",row_code\n"):
        raise DatabaseError(f"unexpected COPY header {lines[0][-40:]!r}")
    return DatasetRows(
        header=lines[0][: -len(b",row_code\n")] + b"\n",
        lines=[line[:-3] for line in lines[1:]],
        codes=bytes(line[-2] for line in lines[1:]).decode("ascii"),
    )


_TABLE = sql.Identifier("verify_ai_ml_samples")
