"""A real training process killed part-way (SIGKILL) continues with --resume: the same job
row and MLflow run finish, and training picks up after the last saved epoch."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from modelyard.db import jobs
from modelyard.db.connection import Connection
from modelyard.tracking import Tracker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 6


def _params(path: Path) -> Path:
    params = {
        "base": {"seed": 0, "policy_id": "demo-policy", "dataset": "demo"},
        "train": {
            "epochs": EPOCHS,
            "batch_size": 8,
            "image_size": 64,
            "lr": 0.001,
            "precision": "32-true",
            "experiment": "tests",
            "patience": EPOCHS,
            "rtdetr": {"num_queries": 20, "num_denoising": 0, "d_model": 64, "ffn_dim": 128},
        },
    }
    path.write_text(yaml.safe_dump(params))
    return path


def _command(tmp_path: Path, prepared: dict[str, Path], *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "pipelines" / "train.py"),
        "--params", str(_params(tmp_path / "params.yaml")),
        "--converted", str(prepared["converted"]),
        "--snapshot", str(prepared["snapshot"]),
        "--out", str(tmp_path / "model"),
        "--checkpoints", str(tmp_path / "checkpoints"),
        "--metrics", str(tmp_path / "train.json"),
        *extra,
    ]  # fmt: skip


def test_a_killed_training_resumes_from_its_last_checkpoint(
    prepared: dict[str, Path], tmp_path: Path, conn: Connection, tracker: Tracker, db_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    last = tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        _command(tmp_path, prepared), cwd=tmp_path, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the training ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert killed_at < EPOCHS - 1

    (job,) = conn.execute("SELECT * FROM verify_ai_ml_jobs").fetchall()
    assert job["status"] == "running"  # SIGKILL leaves it where it was
    assert tracker.client.get_run(job["mlflow_run_id"]).info.status == "RUNNING"

    resumed = subprocess.run(
        _command(tmp_path, prepared, "--resume"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr

    after = jobs.get(conn, job["id"])
    assert (after["status"], after["mlflow_run_id"]) == ("succeeded", job["mlflow_run_id"])
    assert "resumed from last.ckpt" in after["logs"]
    assert conn.execute("SELECT count(*) AS n FROM verify_ai_ml_jobs").fetchone() == {"n": 1}
    run = tracker.client.get_run(job["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    steps = [m.step for m in tracker.client.get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(set(steps)) == list(range(EPOCHS))
    # the resumed process trained only the epochs after the checkpoint
    assert len(re.findall(r"epoch \d+/\d+", resumed.stderr)) <= EPOCHS - killed_at
