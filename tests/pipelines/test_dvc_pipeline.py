"""The real DVC pipeline on the real database: snapshot -> validate -> download -> convert.

Runs `dvc repro` in a scratch copy of the project against this test's database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore
from tests.conftest import MODELYARD

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def project(tmp_path: Path, db_url: str, store: ObjectStore) -> tuple[Path, dict[str, str]]:
    work = tmp_path / "project"
    work.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, work / name)
    for name in ("pipelines", "expectations", "src"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        MODELYARD_STORAGE_URL=store.url,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
    )
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=work, env=env, check=True)
    return work, env


def _repro(work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "convert"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_repro_builds_layouts_reruns_nothing_and_stops_at_a_planted_leak(
    project: tuple[Path, dict[str, str]], conn: Connection, demo_dataset: Dataset
) -> None:
    work, env = project
    first = _repro(work, env)
    assert first.returncode == 0, first.stdout + first.stderr
    info = json.loads((work / "data/snapshot/snapshot.json").read_text())
    assert info["rows"]["test"] > 0
    assert json.loads((work / "reports/quality.json").read_text())["passed"] is True
    assert (work / "reports/quality_docs/index.html").is_file()
    assert (work / "data/converted/coco/train.json").is_file()
    assert (work / "data/converted/yolo/data.yaml").is_file()

    second = _repro(work, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Running stage 'snapshot'" in second.stdout  # the registry is always re-read
    for stage in ("validate", "download", "convert"):
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout

    leaked = conn.execute(
        "UPDATE verify_ai_ml_samples SET split = 'train' WHERE id = (SELECT id FROM "
        "verify_ai_ml_samples WHERE split = 'test' AND review_status = 'approved' "
        "ORDER BY image_path LIMIT 1) RETURNING image_path, group_key"
    ).fetchone()
    third = _repro(work, env)
    assert third.returncode != 0
    assert "failed to reproduce 'validate'" in third.stderr + third.stdout
    assert "Running stage 'download'" not in third.stdout
    report = json.loads((work / "reports/quality.json").read_text())
    assert report["passed"] is False
    leak = next(c for c in report["checks"] if c["check"] == "leakage: group in one split")
    assert leak["success"] is False
    assert leaked["image_path"] in {r["image_path"] for r in leak["rows"]}
    assert {r["group_key"] for r in leak["rows"]} == {leaked["group_key"]}


def test_dataset_ready_refuses_a_leak_then_accepts_the_fixed_split(
    cli_env: dict[str, str], conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    conn.execute(
        "UPDATE verify_ai_ml_samples SET split = 'validation' WHERE id = (SELECT id FROM "
        "verify_ai_ml_samples WHERE split = 'train' AND review_status = 'approved' LIMIT 1)"
    )
    args = ["--params", str(ROOT / "params.yaml"), "--suites", str(ROOT / "expectations")]
    refused = subprocess.run(
        [*MODELYARD, "dataset", "ready", "demo", *args],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "leakage: group in one split" in refused.stdout
    assert "stays collecting" in refused.stderr
    fixed = subprocess.run(
        [
            *MODELYARD,
            "dataset",
            "split",
            "demo",
            "--reassign",
            "--stratify",
            "class,stream,road_type,scenario",
        ],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert fixed.returncode == 0, fixed.stderr
    ready = subprocess.run(
        [*MODELYARD, "dataset", "ready", "demo", *args],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert ready.returncode == 0, ready.stdout + ready.stderr
    status = conn.execute("SELECT status FROM verify_ai_ml_datasets WHERE name = 'demo'").fetchone()
    assert status["status"] == "ready"
