"""The embedded server: configured for bulk writes on first start, stopped on request."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from modelyard.db import connection

pytestmark = pytest.mark.postgres


def test_embedded_server_is_configured_and_stops_from_the_same_process() -> None:
    # Not under pytest's 0700 tmp folder: the server runs as its own OS user when we are root.
    home = Path(tempfile.mkdtemp(prefix="modelyard-test-embedded-"))
    home.chmod(0o755)
    pg_dir = home / "pg"
    try:
        url = connection.embedded_admin_url(pg_dir)
        with psycopg.connect(url) as conn:
            for name, value in connection.EMBEDDED_SETTINGS.items():
                row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
                assert row == (value,), name
        # a second attach finds them set and writes nothing
        assert connection.embedded_admin_url(pg_dir) == url
        assert connection.stop_embedded(pg_dir)
        assert not (pg_dir / "postmaster.pid").exists()
        assert not connection.stop_embedded(pg_dir)
    finally:
        connection.stop_embedded(pg_dir)
        shutil.rmtree(home, ignore_errors=True)


def test_a_process_that_died_attached_does_not_keep_the_server_up() -> None:
    home = Path(tempfile.mkdtemp(prefix="modelyard-test-embedded-"))
    home.chmod(0o755)
    pg_dir = home / "pg"
    try:
        connection.embedded_admin_url(pg_dir)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # attached, then killed before it could detach: its pid stays listed
        handles = pg_dir / connection.HANDLES
        handles.write_text(json.dumps([*json.loads(handles.read_text()), dead.pid]))
        assert connection.stop_embedded(pg_dir)
        assert not (pg_dir / "postmaster.pid").exists()
    finally:
        connection.stop_embedded(pg_dir)
        shutil.rmtree(home, ignore_errors=True)
