"""The command as a user runs it: embedded PostgreSQL started by the CLI itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ENV_KEYS, MODELYARD

pytestmark = pytest.mark.postgres


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["MODELYARD_HOME"] = str(home)
    yield env
    subprocess.run([*MODELYARD, "db", "down"], env=env, check=False, capture_output=True)


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODELYARD, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def test_help_lists_commands(tmp_path: Path) -> None:
    result = _run(dict(os.environ), tmp_path, "--help")
    assert result.returncode == 0
    for command in ("db", "dataset", "ingest", "demo-data"):
        assert command in result.stdout


@pytest.mark.slow
def test_demo_flow_on_embedded_postgres(embedded_env: dict[str, str], tmp_path: Path) -> None:
    steps = [
        ("db", "up"),
        ("db", "migrate"),
        ("demo-data", "--out", "demo", "--count", "30", "--size", "96"),
        (
            "dataset",
            "create",
            "--policy",
            "demo-policy",
            "--name",
            "demo",
            "--classes",
            "car,person,sign",
            "--exist-ok",
        ),
        ("ingest", "coco", "demo/annotations.json", "--dataset", "demo"),
        ("dataset", "inspect", "demo"),
    ]
    outputs = []
    for step in steps:
        result = _run(embedded_env, tmp_path, *step)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
        outputs.append(result.stdout)
    assert "PostgreSQL 16" in outputs[0]
    assert re.search(r"applied \d+ migrations: 0001_create_policies_and_datasets\.sql \.\.\. "
                     r"\d{4}_\w+\.sql", outputs[1]), outputs[1]  # fmt: skip
    assert "30 inserted" in outputs[4]
    assert "invalid rows now: none" in outputs[5]
    report = json.loads((tmp_path / "reports" / "inspect_demo.json").read_text())
    assert report["samples"] == 30 and len(report["first_rows"]) == 30
    groups = report["counts"]["group_key"]
    assert len(groups) > 8  # the console shows 7 and the rest as one row; the report all
    hidden = list(groups.values())[7:]
    assert re.search(rf"{len(hidden)} more\s*│ {sum(hidden)} ", outputs[5]), outputs[5]

    again = _run(embedded_env, tmp_path, "db", "migrate")
    assert "0 applied now" in again.stdout
    status = _run(embedded_env, tmp_path, "db", "status")
    assert status.returncode == 0 and "pending" not in status.stdout
    illegal = _run(embedded_env, tmp_path, "dataset", "set-status", "demo", "training")
    assert illegal.returncode == 1
    assert "cannot go from collecting to training" in illegal.stderr
    assert "ready" in illegal.stderr
    shown = _run(embedded_env, tmp_path, "dataset", "show", "demo-policy/demo")
    assert "samples  30" in shown.stdout and "can go to  archived, ready" in shown.stdout
    listed = _run(embedded_env, tmp_path, "dataset", "list")
    assert "demo-policy" in listed.stdout and "30" in listed.stdout
    url = _run(embedded_env, tmp_path, "db", "url")
    assert url.stdout.startswith("postgresql://") and "modelyard" in url.stdout
    assert (tmp_path / "home" / "pg" / "PG_VERSION").exists()
