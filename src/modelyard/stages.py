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

from modelyard import quiet
from modelyard.config import BaseParams, Settings, load_params, section
from modelyard.db import migrate, stores
from modelyard.db.connection import Connection
from modelyard.errors import ModelyardError
from modelyard.evaluation import gate_report, gates, model_card, plots
from modelyard.evaluation.config import EvaluateParams
from modelyard.evaluation.run import EvaluatePaths, summary
from modelyard.evaluation.run import evaluate as run_evaluation
from modelyard.export.config import ExportParams
from modelyard.export.run import ExportPaths, export_format, verify_format
from modelyard.files import write_json
from modelyard.registry.register import Registered, RegisterInputs
from modelyard.registry.register import register as run_register
from modelyard.storage import ObjectStore
from modelyard.tracking import ARTIFACT_ROOT, Tracker
from modelyard.training.config import TrainParams, with_overrides
from modelyard.training.run import TrainOptions, TrainOutcome, TrainPaths
from modelyard.training.run import train as run_training
from modelyard.training.tuning import TuneOutcome, TuneParams, untuned
from modelyard.training.tuning import tune as run_tuning

log = logging.getLogger("modelyard.stages")


def parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pipelines/{stage}.py", description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return p


def run(stage: str, body: Callable[[dict[str, Any]], int], params_path: Path) -> int:
    """Run ``body(params)``; a ModelyardError becomes one error line and status 1."""
    logging.basicConfig(level=logging.INFO, format=f"{stage}: %(levelname)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    quiet.install()
    try:
        return body(load_params(params_path))
    except ModelyardError as exc:
        log.error("%s", exc)
        return 1


def base(params: dict[str, Any]) -> BaseParams:
    return section(params, "base", BaseParams)


@contextmanager
def database() -> Iterator[Connection]:
    with migrate.current_session(Settings.from_env()) as conn:
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
    return export_format(format_name, section(params, "export", ExportParams), paths)


def verify_export(params: dict[str, Any], format_name: str, paths: ExportPaths) -> dict[str, Any]:
    """``modelyard export verify``: the format's artifacts already exported, checked again in
    their runtime, the manifest rewritten with the result."""
    return verify_format(format_name, section(params, "export", ExportParams), paths)


EVALUATION, CALIBRATION = "evaluation.json", "calibration.json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateOutputs:
    folder: Path  # evaluation.json (everything) and calibration.json (ships with the artifacts)
    metrics: Path  # the headline figures, for `dvc metrics`
    plots: Path  # PNG pictures and CSV curves, for `dvc plots`
    train_report: Path  # train's metrics JSON: the MLflow run the results are logged to


def evaluate(params: dict[str, Any], paths: EvaluatePaths, out: EvaluateOutputs) -> dict[str, Any]:
    """The ``evaluate`` stage: the model and every artifact on the test split, slices and
    calibration -> files, plots, and the training run in MLflow."""
    result = run_evaluation(section(params, "evaluate", EvaluateParams), paths)
    report = result.report
    write_json(out.folder / EVALUATION, report)
    fitted = result.calibration.as_dict() if result.calibration else report["calibration"]
    write_json(out.folder / CALIBRATION, fitted)
    figures = summary(report)
    write_json(out.metrics, figures)
    pictures = plots.write_all(report, result.reliability, out.plots)
    metric_values = {
        f"eval.{name}": value
        for name, value in _numbers_by_path(figures).items()
        if isinstance(value, int | float)
    }
    _log_to_training_run(out.train_report, metric_values, {}, [*pictures, out.folder], "evaluation")
    return report


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatePaths:
    evaluation: Path  # evaluate's folder
    gates: Path  # acceptance_gates.yaml
    train_report: Path  # train's metrics JSON (the MLflow run)
    snapshot: Path  # snapshot.json (dataset and content hash, for the card)
    report: Path  # gate.json to write
    card: Path  # model_card.md to write (its Notes section is kept)


def gate(params: dict[str, Any], paths: GatePaths, argv: list[str]) -> dict[str, Any]:
    """The ``gate`` stage: acceptance gates over the evaluation -> the gate report and the
    model card. Returns the report; the caller exits non-zero unless its status is PASS."""
    evaluation = json.loads((paths.evaluation / EVALUATION).read_text(encoding="utf-8"))
    loaded = gates.load(paths.gates, evaluation["task"])
    run_id = _training_run_id(paths.train_report)
    inputs = [
        paths.evaluation / EVALUATION,
        paths.evaluation / CALIBRATION,
        paths.gates,
        paths.train_report,
        paths.snapshot,
    ]
    origin = gate_report.provenance(
        "pipelines/gate.py", argv, inputs, [paths.report, paths.card], run_id
    )
    report = gate_report.build(loaded, paths.gates, evaluation, origin)
    write_json(paths.report, report)
    snapshot = json.loads(paths.snapshot.read_text(encoding="utf-8"))
    context = {
        "policy_id": base(params).policy_id,
        "dataset": f"{snapshot['dataset']['name']} ({snapshot['dataset']['id']})",
        "snapshot_hash": snapshot["content_hash"],
        "mlflow_run_id": run_id,
        "git_sha": origin["git_sha"],
    }
    model_card.write(paths.card, model_card.render(evaluation, report, context))
    tags = {"gate_status": report["status"], "gate_summary": report["summary"][:4000]}
    _log_to_training_run(paths.train_report, {}, tags, [paths.report, paths.card], "gate")
    return report


def _numbers_by_path(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested figures as dotted MLflow metric names (``slices.stream_front``)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}".replace("=", "_")
        if isinstance(value, dict):
            flat |= _numbers_by_path(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def _training_run_id(train_report: Path) -> str | None:
    if not train_report.is_file():
        return None
    run_id = json.loads(train_report.read_text(encoding="utf-8")).get("mlflow_run_id")
    return str(run_id) if run_id else None


def _log_to_training_run(
    train_report: Path,
    metrics: dict[str, float],
    tags: dict[str, str],
    files: list[Path],
    folder: str,
) -> None:
    """Add to the MLflow run that trained the model, so one run holds its whole story."""
    run_id = _training_run_id(train_report)
    if run_id is None:
        log.warning("no MLflow run id in %s: results not logged to MLflow", train_report)
        return
    run = tracker().reopen(run_id)
    try:
        run.log_metrics(metrics, step=0)
        run.set_tags(tags)
        run.log_artifacts(files, folder)
    finally:
        run.finish()
    log.info("logged to MLflow run %s (%s/)", run_id, folder)


def register(params: dict[str, Any], inputs: RegisterInputs, out: Path) -> Registered:
    """The ``register`` stage and ``modelyard register``: the evaluated, gated bundle -> a new
    version of the policy's MLflow model (alias ``candidate`` only if the gate passed) and its
    verify_ai_ml_models row; ``out`` gets the name, version and row id."""
    with database() as conn:
        registered = run_register(conn, tracker(), base(params).policy_id, inputs)
    write_json(out, registered.as_dict())
    return registered
