"""What every pipeline script shares: parsing its params, connecting, and failing loudly.

A script in ``pipelines/`` is ``main(argv) -> int``: it builds an ``argparse`` parser, then
hands a function to ``run`` — which sets up logging, loads params.yaml, and turns a
``ModelyardError`` into one log line and exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelyard.config import BaseParams, Settings, load_params, section
from modelyard.db import connection, migrate, stores
from modelyard.db.connection import Connection
from modelyard.errors import ModelyardError
from modelyard.export.config import ExportParams
from modelyard.export.run import ExportPaths, export_format
from modelyard.files import write_json
from modelyard.storage import ObjectStore
from modelyard.tracking import Tracker
from modelyard.training.config import TrainParams, with_overrides
from modelyard.training.run import TrainOptions, TrainOutcome, TrainPaths
from modelyard.training.run import train as run_training
from modelyard.training.tuning import TuneOutcome, TuneParams, untuned
from modelyard.training.tuning import tune as run_tuning

log = logging.getLogger("modelyard.stages")

ARTIFACT_ROOT = Path("mlruns")


def parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pipelines/{stage}.py", description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return p


def run(stage: str, body: Callable[[dict[str, Any]], int], params_path: Path) -> int:
    """Run ``body(params)``; a ModelyardError becomes one error line and status 1."""
    logging.basicConfig(level=logging.INFO, format=f"{stage}: %(levelname)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        return body(load_params(params_path))
    except ModelyardError as exc:
        log.error("%s", exc)
        return 1


def base(params: dict[str, Any]) -> BaseParams:
    return section(params, "base", BaseParams)


@contextmanager
def database() -> Iterator[Connection]:
    settings = Settings.from_env()
    with connection.session(connection.database_url(settings)) as conn:
        migrate.require_current(conn, migrate.discover(migrate.default_migrations_dir()))
        yield conn


def store() -> ObjectStore:
    return ObjectStore(Settings.from_env().storage_url)


def tracker() -> Tracker:
    """MLflow: ``MLFLOW_TRACKING_URI``, else the ``mlflow`` database beside the registry;
    artifacts under ``mlruns/``."""
    return Tracker(stores.mlflow_tracking_uri(Settings.from_env()), ARTIFACT_ROOT).ready()


def train(
    params: dict[str, Any],
    paths: TrainPaths,
    metrics: Path,
    *,
    resume: bool = False,
    tuned: Path | None = None,
) -> TrainOutcome:
    """The ``train`` stage and ``modelyard train``: params ``base`` and ``train`` (with the
    best values of a ``tune`` run over them, where ``tuned`` names its file) -> a trained
    model in ``paths.out`` and its final metrics (and MLflow run and job ids) in ``metrics``."""
    cfg = with_overrides(section(params, "train", TrainParams), tuned_values(tuned), "tuned")
    with database() as conn:
        options = TrainOptions(
            resume=resume,
            seed=base(params).seed,
            progress_bar=sys.stderr.isatty(),  # a bar on a terminal; one log line an epoch always
        )
        outcome = run_training(conn, tracker(), cfg, paths, options)
    report = {"mlflow_run_id": outcome.run_id, "job_id": str(outcome.job_id), **outcome.metrics}
    write_json(metrics, report)
    return outcome


def tune(params: dict[str, Any], paths: TrainPaths, best: Path, worker: str) -> TuneOutcome:
    """The ``tune`` stage and ``modelyard tune``: trials of the study params ``tune`` names
    (none when ``tune.trials`` is 0); the best values so far go to ``best`` (JSON), which
    the ``train`` stage applies over params ``train``."""
    cfg = section(params, "train", TrainParams)
    tuning = section(params, "tune", TuneParams)
    if tuning.trials == 0:
        outcome = untuned(tuning.study)
    else:
        settings = Settings.from_env()
        with database() as conn:
            outcome = run_tuning(
                conn, tracker(), cfg, tuning, paths, stores.optuna_storage_url(settings), worker
            )
    write_json(best, dataclasses.asdict(outcome))
    return outcome


def tuned_values(best: Path | None) -> dict[str, Any]:
    """The best values a ``tune`` run wrote (empty without a file or without trials)."""
    if best is None or not best.is_file():
        return {}
    values: dict[str, Any] = json.loads(best.read_text(encoding="utf-8"))["best_params"]
    return values


def export(params: dict[str, Any], format_name: str, paths: ExportPaths) -> dict[str, Any]:
    """The ``export`` stage (one format of its matrix) and ``modelyard export run``: params
    ``export`` -> the format's artifacts, manifest and parity report; fails on any artifact
    that does not behave like the PyTorch model."""
    manifest = export_format(format_name, section(params, "export", ExportParams), paths)
    for artifact in manifest["artifacts"]:
        log.info(
            "%s: parity %s, %s ms, sha256 %s", artifact["file"], artifact["parity"]["status"],
            artifact["inference_time_ms"], artifact["sha256"][:12],
        )  # fmt: skip
    return manifest
