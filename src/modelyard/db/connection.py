"""Connections: the embedded PostgreSQL (pgserver) by default, ``DATABASE_URL`` when set."""

from __future__ import annotations

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


def embedded_admin_url(pg_dir: Path) -> str:
    """Start (or re-attach to) the embedded server and return the URI of its admin database."""
    try:
        server = _embedded_server(pg_dir)
    except Exception as exc:  # pgserver raises plain exceptions from initdb / pg_ctl
        raise DatabaseError(f"could not start the embedded PostgreSQL in {pg_dir}: {exc}") from exc
    return str(server.get_uri())  # type: ignore[attr-defined]


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
        except psycopg.errors.DuplicateDatabase:
            return False  # created by a concurrent process in the meantime
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


def stop_embedded(pg_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when it was running."""
    if not (pg_dir / "postmaster.pid").exists():
        return False
    server = _embedded_server(pg_dir, cleanup_mode="stop")
    server.cleanup()  # type: ignore[attr-defined]
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
