"""Shared fixtures: one embedded PostgreSQL per test session, one fresh database per test.

The session migrates a template database once; each test that needs the database gets its
own copy (CREATE DATABASE ... TEMPLATE), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.db import connection, migrate
from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore

pytest_plugins = ["tests.trained"]  # the session's trained models (slow: only where asked for)

TEMPLATE = "modelyard_template"
MODELYARD = [sys.executable, "-m", "modelyard"]
ENV_KEYS = (
    "DATABASE_URL",
    "MODELYARD_HOME",
    "MODELYARD_STORAGE_URL",
    "MLFLOW_TRACKING_URI",
    "MODELYARD_SIGNING_KEY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts with no modelyard settings but a private MODELYARD_HOME."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    # Not under pytest's 0700 tmp folder: the server runs as its own OS user when we are root.
    pg_dir = Path(tempfile.mkdtemp(prefix="modelyard-test-pg-"))
    pg_dir.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(pg_dir, cleanup_mode="stop")
    url = str(server.get_uri())
    connection.ensure_database(url, TEMPLATE)
    with connection.connect(connection.with_database(url, TEMPLATE)) as conn:
        migrate.migrate(conn, migrate.discover(migrate.default_migrations_dir()))
    yield url
    server.cleanup()
    shutil.rmtree(pg_dir, ignore_errors=True)


@pytest.fixture
def db_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection.ensure_database(pg_admin_url, name, template=TEMPLATE)
    yield connection.with_database(pg_admin_url, name)
    connection.drop_database(pg_admin_url, name)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    connection.ensure_database(pg_admin_url, name)
    yield connection.with_database(pg_admin_url, name)
    connection.drop_database(pg_admin_url, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    with connection.connect(db_url) as c:
        yield c


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(str(tmp_path / "store"))


@pytest.fixture
def dataset(conn: Connection) -> Dataset:
    return datasets_db.create(
        conn, policy_id="test-policy", name="cars", classes=["car", "person", "sign"]
    )


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `modelyard` command against this test's database."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(
        DATABASE_URL=db_url,
        MODELYARD_HOME=str(tmp_path / "home"),
        MODELYARD_STORAGE_URL=str(tmp_path / "store"),
    )
    return env


@pytest.fixture(scope="session")
def demo_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo source (COCO json + images), generated once per test session."""
    from modelyard.datasets import synthetic

    out = tmp_path_factory.mktemp("demo")
    return synthetic.generate(out, synthetic.DemoConfig(count=120, size=64, seed=3))


DEMO_STRATIFY = ("class", "stream", "road_type", "scenario")


@pytest.fixture
def demo_dataset(conn: Connection, store: ObjectStore, demo_coco: Path) -> Dataset:
    """The small demo source ingested into a fresh dataset and split 70/15/15 (seed 0)."""
    return ingest_demo(conn, store, demo_coco)


def ingest_demo(conn: Connection, store: ObjectStore, demo_coco: Path) -> Dataset:
    from modelyard.datasets import splits
    from modelyard.datasets.ingest import IngestReport, read_source, run_ingest

    ds = datasets_db.create(
        conn, policy_id="demo-policy", name="demo", classes=["car", "person", "sign"]
    )
    report = IngestReport(dataset="demo", source_format="coco", source_path=str(demo_coco))
    run_ingest(conn, store, ds, read_source("coco", demo_coco), report)
    request = splits.SplitRequest(ratios=(0.7, 0.15, 0.15), seed=0)
    splits.split_dataset(conn, ds, request, DEMO_STRATIFY)
    return ds
