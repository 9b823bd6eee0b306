"""``modelyard ui``: the MLflow UI answers on 127.0.0.1 over the project's store, and the
server it starts goes down with the command, SIGTERM included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import MODELYARD

pytestmark = [pytest.mark.postgres]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ui_serves_the_store_and_stops_its_server_on_sigterm(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*MODELYARD, "ui", "--port", str(port), "--artifacts", str(tmp_path / "mlruns")],
        cwd=tmp_path,
        env=cli_env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server: list[int] = []
    try:
        deadline, body = time.monotonic() + 120, b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5",
                    timeout=2,
                ) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.5)
        assert b"experiments" in body, proc.stdout.read() if proc.poll() is not None else body
        server += [
            int(line.split()[0])
            for line in subprocess.run(
                ["ps", "-eo", "pid,ppid"], capture_output=True, text=True, check=True
            ).stdout.splitlines()[1:]
            if int(line.split()[1]) == proc.pid
        ]
        assert server, "the UI command started no server process"

        proc.send_signal(signal.SIGTERM)  # the command only, not its server's group
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_group_alive(pid) for pid in server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_group_alive(pid) for pid in server), "the MLflow server outlived ui"
    finally:  # nothing left behind, whatever failed
        for pgid in [proc.pid, *server]:
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
