"""A whole training on the real database and a real MLflow store: the run carries the
lineage tags and the metrics, the job row follows it, provenance rows are written, and a
failure is told apart from a success."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modelyard.db import jobs
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import ConfigError, TrainingError
from modelyard.tracking import Tracker
from modelyard.training.detectors.rtdetr import RtDetrModule
from modelyard.training.run import TrainOptions, train
from tests.training.conftest import tiny_params, train_paths

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
QUIET = TrainOptions(progress_bar=False)


def test_training_is_tracked_with_lineage_job_and_provenance(
    prepared: dict[str, Path],
    tmp_path: Path,
    conn: Connection,
    tracker: Tracker,
    demo_dataset: Dataset,
) -> None:
    outcome = train(conn, tracker, tiny_params(), train_paths(prepared, tmp_path), QUIET)

    run = tracker.client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    snapshot = json.loads((prepared["snapshot"] / "snapshot.json").read_text())
    assert tags["dataset_id"] == str(demo_dataset.id)
    assert tags["snapshot_hash"] == snapshot["content_hash"]
    assert len(tags["git_sha"]) == 40
    assert len(tags["params_hash"]) == 64
    assert "dvc_lock_hash" in tags
    assert tags["version.torch"].startswith("2.")
    assert run.data.params["architecture"] == "rt-detrv2-s"
    assert run.data.params["rtdetr.num_queries"] == "20"
    history = tracker.client.get_metric_history(outcome.run_id, "val_map50")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in tracker.client.list_artifacts(outcome.run_id)}
    assert {"classes.json", "config.json", "checkpoint"} <= artifacts

    job = jobs.get(conn, outcome.job_id)
    assert (job["status"], job["progress"], job["mlflow_run_id"]) == (
        "succeeded",
        1.0,
        outcome.run_id,
    )
    assert "epoch 2/2" in job["logs"]
    published = torch.load(outcome.model, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in published  # resume state stays in the checkpoint folder
    model = RtDetrModule.load_from_checkpoint(outcome.model, map_location="cpu")
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu")["state_dict"]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())

    used = conn.execute(
        "SELECT count(*) AS n FROM model_training_snapshot_labels l "
        "JOIN model_training_runs r ON r.id = l.training_run_id WHERE r.model_version = %s",
        (outcome.run_id,),
    ).fetchone()
    rows = snapshot["rows"]
    assert used is not None and used["n"] == rows["train"] + rows["validation"]


def test_a_failed_training_marks_the_job_and_run_failed(
    prepared: dict[str, Path], tmp_path: Path, conn: Connection, tracker: Tracker
) -> None:
    params = tiny_params(weights=str(tmp_path / "no-such-weights"))
    with pytest.raises(TrainingError, match="no-such-weights"):
        train(conn, tracker, params, train_paths(prepared, tmp_path), QUIET)
    job = conn.execute("SELECT * FROM verify_ai_ml_jobs").fetchone()
    assert job is not None and job["status"] == "failed"
    assert "no-such-weights" in job["error"]
    assert tracker.client.get_run(job["mlflow_run_id"]).info.status == "FAILED"


def test_an_unknown_architecture_is_refused_before_anything_starts(
    prepared: dict[str, Path], tmp_path: Path, conn: Connection, tracker: Tracker
) -> None:
    with pytest.raises(ConfigError, match="did you mean 'rt-detrv2-s'"):
        train(
            conn, tracker, tiny_params(architecture="rt-detr2-s"), train_paths(prepared, tmp_path)
        )
    assert conn.execute("SELECT count(*) AS n FROM verify_ai_ml_jobs").fetchone() == {"n": 0}
