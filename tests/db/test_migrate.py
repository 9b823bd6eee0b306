from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelyard.db import connection, migrate
from modelyard.errors import MigrationChecksumError, MigrationError

pytestmark = pytest.mark.postgres


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(migrate.default_migrations_dir(), target)
    return target


def _tables(url: str) -> set[str]:
    with connection.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r["tablename"] for r in rows}


def test_applies_every_migration_once(empty_db_url: str, migrations_dir: Path) -> None:
    migrations = migrate.discover(migrations_dir)
    with connection.connect(empty_db_url) as conn:
        first = migrate.migrate(conn, migrations)
        second = migrate.migrate(conn, migrations)
        states = migrate.status(conn, migrations)
    assert [m.version for m in first] == [m.version for m in migrations]
    assert second == []
    assert {s.state for s in states} == {"applied"}
    design_tables = {
        "verify_ai_policies",
        "verify_ai_ml_datasets",
        "verify_ai_ml_samples",
        "verify_ai_ml_jobs",
        "verify_ai_ml_models",
        "verify_ai_model_bundles",
        "verify_ai_model_reference_stats",
        "verify_ai_bundle_events",
        "model_training_runs",
        "model_training_snapshot_labels",
        "verify_ai_api_keys",
        "schema_migrations",
    }
    assert design_tables <= _tables(empty_db_url)


def test_edited_applied_migration_is_refused(empty_db_url: str, migrations_dir: Path) -> None:
    with connection.connect(empty_db_url) as conn:
        migrate.migrate(conn, migrate.discover(migrations_dir))
        edited = migrations_dir / "0002_create_samples_and_ingests.sql"
        edited.write_text(edited.read_text() + "\n-- a quiet edit\n")
        (migrations_dir / "0099_add_extra.sql").write_text("CREATE TABLE extra (id int);")
        with pytest.raises(MigrationChecksumError, match=r"0002_create_samples_and_ingests\.sql"):
            migrate.migrate(conn, migrate.discover(migrations_dir))
        states = {
            s.version: s.state for s in migrate.status(conn, migrate.discover(migrations_dir))
        }
    assert states["0002"] == "edited"
    assert states["0099"] == "pending"
    assert "extra" not in _tables(empty_db_url), "nothing may run once the history is wrong"


def test_new_migration_is_applied_alone(empty_db_url: str, migrations_dir: Path) -> None:
    with connection.connect(empty_db_url) as conn:
        migrate.migrate(conn, migrate.discover(migrations_dir))
        (migrations_dir / "0099_create_extra.sql").write_text("CREATE TABLE extra (id int);")
        applied = migrate.migrate(conn, migrate.discover(migrations_dir))
    assert [m.name for m in applied] == ["create_extra"]
    assert "extra" in _tables(empty_db_url)


def test_failed_migration_rolls_back(empty_db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_create_a.sql").write_text("CREATE TABLE a (id int);")
    (folder / "0002_create_b.sql").write_text("CREATE TABLE b (id int); SELECT * FROM nowhere;")
    with connection.connect(empty_db_url) as conn:
        with pytest.raises(MigrationError, match=r"0002_create_b\.sql failed and was rolled back"):
            migrate.migrate(conn, migrate.discover(folder))
        states = {s.version: s.state for s in migrate.status(conn, migrate.discover(folder))}
    assert states == {"0001": "applied", "0002": "pending"}
    assert "b" not in _tables(empty_db_url)


def test_missing_file_and_out_of_order_are_refused(empty_db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_create_a.sql").write_text("CREATE TABLE a (id int);")
    (folder / "0003_create_c.sql").write_text("CREATE TABLE c (id int);")
    with connection.connect(empty_db_url) as conn:
        migrate.migrate(conn, migrate.discover(folder))
        (folder / "0002_create_b.sql").write_text("CREATE TABLE b (id int);")
        with pytest.raises(MigrationError, match="renumber it after 0003"):
            migrate.migrate(conn, migrate.discover(folder))
        (folder / "0002_create_b.sql").unlink()
        (folder / "0001_create_a.sql").unlink()
        with pytest.raises(MigrationError, match="its file is missing"):
            migrate.migrate(conn, migrate.discover(folder))


@pytest.mark.parametrize("name", ["1_create_a.sql", "0001-create-a.sql", "0001_Create_A.sql"])
def test_badly_named_file_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_<verb>_<object>\.sql"):
        migrate.discover(tmp_path)


def test_require_current_names_pending(empty_db_url: str) -> None:
    with (
        connection.connect(empty_db_url) as conn,
        pytest.raises(MigrationError, match="run `modelyard db migrate`"),
    ):
        migrate.require_current(conn, migrate.discover(migrate.default_migrations_dir()))
