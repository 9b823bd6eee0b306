"""Tuning: two worker processes on one Optuna study in PostgreSQL share its trials, each trial
a nested MLflow run; and the search space is checked before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from modelyard.config import Settings
from modelyard.db import stores
from modelyard.errors import ConfigError
from modelyard.tracking import Tracker
from modelyard.training.config import TrainParams, with_overrides
from modelyard.training.tuning import TuneParams

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 2


def _params(path: Path, study: str) -> Path:
    params = {
        "base": {"seed": 0, "policy_id": "demo-policy", "dataset": "demo"},
        "train": {
            "batch_size": 8,
            "image_size": 64,
            "precision": "32-true",
            "experiment": "tests-tune",
            "rtdetr": {"num_queries": 20, "num_denoising": 0, "d_model": 64, "ffn_dim": 128},
        },
        "tune": {
            "study": study,
            "trials": TRIALS,
            "epochs": 2,
            "space": {
                "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                "rtdetr.num_queries": {"type": "categorical", "choices": [10, 20]},
            },
        },
    }
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_cooperate_on_one_study(
    prepared: dict[str, Path], tmp_path: Path, tracker: Tracker, db_url: str
) -> None:
    params = _params(tmp_path / "params.yaml", study=f"study-{tmp_path.name}")
    env = {**os.environ, "DATABASE_URL": db_url}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelyard",
                "tune",
                "--params",
                str(params),
                "--worker",
                f"w{n}",
                "--converted",
                str(prepared["converted"]),
                "--snapshot",
                str(prepared["snapshot"]),
                "--best",
                str(tmp_path / f"best{n}.json"),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in (1, 2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    storage = stores.optuna_storage_url(Settings.from_env({"DATABASE_URL": db_url}))
    study = optuna.load_study(study_name=f"study-{tmp_path.name}", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 * TRIALS
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS))
    assert {t.user_attrs["worker"] for t in trials} == {"w1", "w2"}
    # every finished trial is an MLflow run nested in its worker's run
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            run = tracker.client.get_run(t.user_attrs["mlflow_run_id"])
            parent = tracker.client.get_run(run.data.tags["mlflow.parentRunId"])
            assert parent.data.tags["modelyard.worker"] == t.user_attrs["worker"]
    assert "best" in outputs[1]


def test_a_bad_search_space_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"tune\.space\.lr\.type"):
        TuneParams(space={"lr": {"type": "floaty", "low": 0.1, "high": 1}}).dimensions()
    with pytest.raises(ConfigError, match=r"tune\.space\.lr: needs numbers low < high"):
        TuneParams(space={"lr": {"type": "float", "low": 1, "high": 0.1}}).dimensions()
    with pytest.raises(ConfigError, match=r"tune\.rtdetr\.queries"):
        with_overrides(TrainParams(), {"rtdetr.queries": 5}, "tune")


def test_overrides_reach_nested_settings() -> None:
    params = with_overrides(TrainParams(), {"lr": 0.01, "rtdetr.num_queries": 7}, "tune")
    assert (params.lr, params.rtdetr.num_queries) == (0.01, 7)
