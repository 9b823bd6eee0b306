"""The schema enforces its own rules, whoever writes to it."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from modelyard.datasets.checks import path_problem
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset

pytestmark = pytest.mark.postgres

SHA = "a" * 64


def _insert(conn: Connection, owner: object, **overrides: object) -> None:
    row: dict[str, object] = {
        "dataset_id": owner,
        "image_path": "a.png",
        "image_sha256": SHA,
        "width": 10,
        "height": 10,
    }
    row.update(overrides)
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO verify_ai_ml_samples ({cols}) VALUES ({marks})", list(row.values()))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"split": "val"}, psycopg.errors.CheckViolation),
        ({"review_status": "ok"}, psycopg.errors.CheckViolation),
        ({"image_path": "/abs/a.png"}, psycopg.errors.CheckViolation),
        ({"image_path": "../a.png"}, psycopg.errors.CheckViolation),
        ({"width": 0}, psycopg.errors.CheckViolation),
        ({"image_sha256": "xyz"}, psycopg.errors.CheckViolation),
        (
            {"crop_x1": 0.5, "crop_y1": 0.1, "crop_x2": 0.4, "crop_y2": 0.9},
            psycopg.errors.CheckViolation,
        ),
        ({"crop_x1": 0.1}, psycopg.errors.CheckViolation),
        ({"rating_count": -1}, psycopg.errors.CheckViolation),
        ({"dataset_id": uuid.uuid4()}, psycopg.errors.ForeignKeyViolation),
    ],
)
def test_sample_constraints(
    conn: Connection, dataset: Dataset, overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _insert(conn, dataset.id, **overrides)


def test_image_path_unique_per_dataset(conn: Connection, dataset: Dataset) -> None:
    _insert(conn, dataset.id)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert(conn, dataset.id)


def test_dataset_status_values(conn: Connection, dataset: Dataset) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO verify_ai_ml_datasets (policy_id, name, status) "
            "VALUES ('test-policy', 'x', 'done')"
        )


def test_illegal_transition_refused_by_the_schema(conn: Connection, dataset: Dataset) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="collecting -> training"):
        conn.execute(
            "UPDATE verify_ai_ml_datasets SET status = 'training' WHERE id = %s", (dataset.id,)
        )


def test_bundle_events_are_append_only(conn: Connection) -> None:
    conn.execute("INSERT INTO verify_ai_bundle_events (event, actor) VALUES ('x', 'me')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE verify_ai_bundle_events SET actor = 'someone else'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM verify_ai_bundle_events")


def test_bundle_version_unique_per_policy(conn: Connection, dataset: Dataset) -> None:
    sql = "INSERT INTO verify_ai_model_bundles (policy_id, bundle_version) VALUES (%s, 1)"
    conn.execute(sql, (dataset.policy_id,))
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(sql, (dataset.policy_id,))


@pytest.mark.parametrize(
    "path",
    [
        "a.png",
        "dir/a.png",
        "a..b.png",
        "..a/b.png",
        "a/..b/c.png",
        "dir/.../a.png",
        "1:x.png",
        "é:x.png",
        "",
        "/a.png",
        "C:a.png",
        "c:/x.png",
        "a\\b.png",
        "..",
        "../a.png",
        "a/../b.png",
        "a/..",
    ],
)
def test_image_path_check_agrees_with_ingest(conn: Connection, dataset: Dataset, path: str) -> None:
    """The schema refuses exactly the paths ingest refuses, whoever writes them."""
    refused = path_problem(path) is not None
    try:
        with conn.transaction():
            _insert(conn, dataset.id, image_path=path)
    except psycopg.errors.CheckViolation:
        assert refused, f"the schema refused {path!r}, which ingest accepts"
    else:
        assert not refused, f"the schema accepted {path!r}, which ingest refuses"


@pytest.mark.parametrize(
    ("column", "value", "legal"),
    [
        ("image_sha256", "0123456789abcdef" * 4, True),
        ("image_sha256", "A" * 64, False),
        ("image_sha256", "g" * 64, False),
        ("image_sha256", "a" * 63, False),
        ("image_sha256", "a " * 32, False),
        ("image_dhash", "0123456789abcdef", True),
        ("image_dhash", "0123456789abcdeF", False),
        ("image_dhash", "0123456789abcde", False),
        ("image_dhash", "0123456789abcde-", False),
    ],
)
def test_hash_checks(
    conn: Connection, dataset: Dataset, column: str, value: str, legal: bool
) -> None:
    try:
        with conn.transaction():
            _insert(conn, dataset.id, **{column: value})
    except psycopg.errors.CheckViolation:
        assert not legal, f"{column} {value!r} refused"
    else:
        assert legal, f"{column} {value!r} accepted"
