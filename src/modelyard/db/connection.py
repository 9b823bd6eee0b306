"""Connections: the embedded PostgreSQL (pgserver) by default, ``DATABASE_URL`` when set."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from modelyard.config import Settings
from modelyard.errors import DatabaseError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "modelyard"

Connection = psycopg.Connection[dict[str, Any]]


def _embedded_server(pg_dir: Path, cleanup_mode: str | None = None) -> object:
    pg_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp, which is fine
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver.postgres_server import get_server

        # cleanup_mode=None: the server outlives this process, so the next command re-attaches
        # in milliseconds instead of starting it again; `modelyard db down` stops it.
        return get_server(pg_dir, cleanup_mode=cleanup_mode)


# The embedded server does one user's bulk work: a split rewrites up to millions of rows in
# one UPDATE. With the stock 1 GB of WAL between checkpoints such an UPDATE sets off
# checkpoints part-way, after which every page it touches is logged whole again. (WAL
# compression, tried too, costs more CPU than the smaller WAL saves: 26 s against 19 s for a
# million-row UPDATE.) A server named by DATABASE_URL keeps its own configuration.
EMBEDDED_SETTINGS = {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}


def embedded_admin_url(pg_dir: Path) -> str:
    """Start (or re-attach to) the embedded server and return the URI of its admin database."""
    try:
        server = _embedded_server(pg_dir)
    except Exception as exc:  # pgserver raises plain exceptions from initdb / pg_ctl
        raise DatabaseError(f"could not start the embedded PostgreSQL in {pg_dir}: {exc}") from exc
    url = str(server.get_uri())  # type: ignore[attr-defined]
    _configure_embedded(url)
    return url


def _configure_embedded(admin_url: str) -> None:
    """Write EMBEDDED_SETTINGS into the server's configuration where they differ (once per
    data folder: they persist) and have the server re-read it; all take effect without a
    restart."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        stale = [
            name
            for name, value in EMBEDDED_SETTINGS.items()
            if conn.execute("SELECT current_setting(%s)", (name,)).fetchone() != (value,)
        ]
        for name in stale:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(EMBEDDED_SETTINGS[name])
                )
            )
        if stale:
            conn.execute("SELECT pg_reload_conf()")
            log.info("embedded PostgreSQL configured: %s", ", ".join(stale))


def database_url(settings: Settings) -> str:
    """The URI the project uses: ``DATABASE_URL``, or the embedded server's ``modelyard`` db."""
    if settings.database_url:
        return settings.database_url
    admin = embedded_admin_url(settings.pg_dir)
    ensure_database(admin, EMBEDDED_DATABASE)
    return with_database(admin, EMBEDDED_DATABASE)


def with_database(url: str, database: str) -> str:
    """The same server URI pointing at another database."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path=f"/{database}"))
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


def fetch_one(cursor: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    """The one row a statement must return (INSERT ... RETURNING, count(*))."""
    row = cursor.fetchone()
    if row is None:
        raise DatabaseError("the statement returned no row where one was expected")
    return row


def ensure_database(admin_url: str, name: str, template: str | None = None) -> bool:
    """Create database ``name`` if it does not exist; True when it was created."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        try:
            conn.execute(statement)
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # created by a concurrent process in the meantime: PostgreSQL says so with either
            # error, depending on whether the other CREATE committed before this one started
            return False
    log.info("created database %s", name)
    return True


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def connect(url: str) -> Connection:
    """Open an autocommit connection whose rows are dicts; errors become DatabaseError.

    Autocommit, so that every multi-statement change is an explicit ``transaction()`` block.
    """
    try:
        return psycopg.connect(url, row_factory=dict_row, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to PostgreSQL: {str(exc).strip()}\n  fix: check DATABASE_URL, "
            "or unset it to use the embedded server (modelyard db up)"
        ) from exc


@contextmanager
def session(url: str) -> Iterator[Connection]:
    """A connection for one command; database errors not handled below become DatabaseError."""
    try:
        with connect(url) as conn:
            yield conn
    except psycopg.Error as exc:
        raise DatabaseError(f"database error: {exc}") from exc


HANDLES = ".handle_pids.json"  # pgserver's list of the processes attached to a server


def stop_embedded(pg_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when it was running. pgserver stops it only
    when no other process is attached: processes that died without detaching are dropped
    from its list first, and live ones make this a DatabaseError naming them."""
    if not (pg_dir / "postmaster.pid").exists():
        return False
    _drop_dead_handles(pg_dir / HANDLES)
    server = _embedded_server(pg_dir, cleanup_mode="stop")
    # pgserver hands back the instance this process already holds, made with the mode of the
    # first call (None: outlive the process); ask for a stop whichever it was
    server.cleanup_mode = "stop"  # type: ignore[attr-defined]
    server.cleanup()  # type: ignore[attr-defined]
    if (pg_dir / "postmaster.pid").exists():
        users = _read_handles(pg_dir / HANDLES)
        raise DatabaseError(
            f"the embedded PostgreSQL in {pg_dir} is still in use by processes {users}; "
            "fix: stop them (or wait for them to end), then run `modelyard db down` again"
        )
    return True


def _read_handles(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [int(p) for p in pids] if isinstance(pids, list) else []


def _drop_dead_handles(path: Path) -> None:
    pids = _read_handles(path)
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive), encoding="utf-8")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def psql_command(url: str) -> list[str]:
    """The psql command line for ``url``: the system psql if present, else pgserver's own."""
    from pgserver._commands import POSTGRES_BIN_PATH

    system = shutil.which("psql")
    bundled = Path(POSTGRES_BIN_PATH) / "psql"
    return [system or str(bundled), url]


def run_psql(url: str) -> int:
    command = psql_command(url)
    return subprocess.call(command, env=os.environ.copy())  # noqa: S603 - our own argv


def plan_for_bulk_read(conn: Connection, *, parallel: bool = True) -> None:
    """For the rest of the current transaction, plan for reading a whole table: sorts and
    hashes in memory and, with ``parallel``, the scan (with its per-row output formatting)
    split over parallel workers, which the stock costs never choose for a query whose rows
    all go to the client. Reading a million manifest rows from a table whose physical order
    is scrambled (so path order means reading pages at random): 13 s in one process, 8 s
    with two workers; no gain when the table is already in path order. Without ``parallel``
    rows come in the table's physical order."""
    settings = {"work_mem": "256MB"}
    if parallel:
        settings |= {"parallel_setup_cost": "10", "parallel_tuple_cost": "0.01"}
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def copy_csv(conn: Connection, query: sql.Composable) -> bytes:
    """``COPY (query) TO STDOUT`` as CSV with a header."""
    return b"".join(copy_lines(conn, query))


def copy_lines(conn: Connection, query: sql.Composable) -> list[bytes]:
    """``COPY (query) TO STDOUT`` as CSV: the header line, then one item per row.

    The protocol sends each row as one message (libpq hands them out "one data row at a
    time"), so a row whose quoted field holds a newline is still one item.
    """
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(query)
    with conn.cursor().copy(statement) as copy:
        return [bytes(chunk) for chunk in copy]
