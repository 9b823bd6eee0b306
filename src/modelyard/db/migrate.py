"""Forward-only SQL migrations, applied in order, each in its own transaction.

Every applied file is recorded in ``schema_migrations`` with its sha256. Re-running applies
nothing; an applied file that was edited afterwards, a file missing from disk, or a new file
numbered before the latest applied one is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from modelyard.config import Settings
from modelyard.db import connection
from modelyard.db.connection import Connection
from modelyard.errors import MigrationChecksumError, MigrationError

log = logging.getLogger(__name__)

FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant identifies our advisory lock; concurrent migrators queue on it.
LOCK_KEY = 0x6D6F64656C79  # "modely"

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   char(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: str
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class MigrationState:
    version: str
    name: str
    state: str  # applied | pending | edited | missing-file
    applied_at: str | None


def default_migrations_dir() -> Path:
    """The migrations shipped in a wheel, else the repository's ``migrations/``."""
    packaged = Path(__file__).resolve().parent.parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "migrations"


def discover(directory: Path) -> list[Migration]:
    """The migration files in ``directory``, in version order."""
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILENAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_<verb>_<object>.sql "
                "(four digits, lower-case words joined by '_')"
            )
        version = match["version"]
        if version in found:
            raise MigrationError(
                f"{path.name}: version {version} is also used by {found[version].path.name}; "
                "give the new file the next free number"
            )
        found[version] = Migration(
            version=version, name=match["name"], path=path, sql=path.read_text(encoding="utf-8")
        )
    return [found[v] for v in sorted(found)]


def _applied(conn: Connection) -> dict[str, dict[str, object]]:
    """The recorded migrations; read-only (an unmigrated database has none)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') AS t").fetchone()
    if exists is None or exists["t"] is None:
        return {}
    rows = conn.execute(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
    ).fetchall()
    return {str(row["version"]): row for row in rows}


def status(conn: Connection, migrations: list[Migration]) -> list[MigrationState]:
    """Each migration's state, files and database together, in version order."""
    applied = _applied(conn)
    by_version = {m.version: m for m in migrations}
    states: list[MigrationState] = []
    for version in sorted(set(applied) | set(by_version)):
        row, mig = applied.get(version), by_version.get(version)
        if row is None:
            name = mig.name if mig else "?"
            states.append(
                MigrationState(version=version, name=name, state="pending", applied_at=None)
            )
            continue
        if mig is None:
            state = "missing-file"
        else:
            state = "applied" if row["checksum"] == mig.checksum else "edited"
        states.append(
            MigrationState(
                version=version,
                name=str(row["name"]),
                state=state,
                applied_at=f"{row['applied_at']:%Y-%m-%d %H:%M:%S}",
            )
        )
    return states


def _check_history(applied: dict[str, dict[str, object]], migrations: list[Migration]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, row in applied.items():
        mig = by_version.get(version)
        if mig is None:
            raise MigrationError(
                f"migration {version}_{row['name']} is applied in the database but its file is "
                "missing; this code is older than the database — use the matching modelyard version"
            )
        if row["checksum"] != mig.checksum:
            raise MigrationChecksumError(
                f"{mig.path.name} was edited after it was applied "
                f"(recorded sha256 {str(row['checksum'])[:12]}…, file now {mig.checksum[:12]}…); "
                "migrations are forward-only: restore the file and put the change in a new "
                "migration"
            )
    latest = max(applied, default="")
    for mig in migrations:
        if mig.version not in applied and mig.version < latest:
            raise MigrationError(
                f"{mig.path.name} is pending but numbered before the latest applied migration "
                f"{latest}; renumber it after {latest}"
            )


def migrate(conn: Connection, migrations: list[Migration]) -> list[Migration]:
    """Apply the pending migrations in order; returns those applied (empty when up to date)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.execute(BOOTSTRAP)
        applied = _applied(conn)
        _check_history(applied, migrations)
        done: list[Migration] = []
        for mig in migrations:
            if mig.version in applied:
                continue
            _apply(conn, mig)
            done.append(mig)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _apply(conn: Connection, mig: Migration) -> None:
    log.info("applying migration %s", mig.path.name)
    try:
        with conn.transaction():
            conn.execute(mig.sql.encode())  # a trusted file of the project
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (mig.version, mig.name, mig.checksum),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"{mig.path.name} failed and was rolled back: {exc}") from exc


def require_current(conn: Connection, migrations: list[Migration]) -> None:
    """Raise unless every migration is applied, unedited."""
    pending = [s for s in status(conn, migrations) if s.state != "applied"]
    if pending:
        states = ", ".join(f"{s.version}_{s.name} ({s.state})" for s in pending)
        raise MigrationError(
            f"the database schema is not current: {states}; run `modelyard db migrate`"
        )


@contextmanager
def current_session(settings: Settings) -> Iterator[Connection]:
    """A connection for one command, on a database whose schema is current."""
    with connection.session(connection.database_url(settings)) as conn:
        require_current(conn, discover(default_migrations_dir()))
        yield conn
