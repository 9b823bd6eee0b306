"""One training, start to finish: a job row, an MLflow run with the lineage tags, the fit,
the best checkpoint and its class map as artifacts, and the provenance rows.

``train`` is what the ``train`` stage and ``modelyard train`` call. A training killed part-way
keeps ``last.ckpt`` and ``run.json`` (its job and MLflow run) in the checkpoint folder;
``resume=True`` continues the same job and run from there.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

from modelyard.datasets import provenance
from modelyard.db import jobs
from modelyard.db.connection import Connection
from modelyard.errors import ConfigError, ModelyardError, TrainingError
from modelyard.tracking import TrackedRun, Tracker
from modelyard.training import architectures, fit, lineage
from modelyard.training.callbacks import EpochHook
from modelyard.training.config import TrainParams
from modelyard.training.detectors.coco import Layout

log = logging.getLogger(__name__)

STATE = "run.json"


@dataclass(frozen=True, kw_only=True)
class TrainPaths:
    converted: Path  # the `convert` layouts
    snapshot: Path  # snapshot.json and the manifests
    out: Path  # model.ckpt, classes.json, config.json, run.json
    checkpoints: Path  # last.ckpt / best.ckpt while training (kept for --resume)
    repo: Path = Path()


@dataclass(frozen=True, kw_only=True)
class TrainOutcome:
    run_id: str
    job_id: uuid.UUID
    model: Path
    best_score: float
    metrics: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    resume: bool = False  # continue the job and run recorded in the checkpoint folder
    seed: int = 0
    parent_run_id: str | None = None  # nest the MLflow run (a tuning trial)
    hooks: Sequence[EpochHook] = ()  # called after every epoch with its metrics
    callbacks: Sequence[L.Callback] = ()  # Lightning architectures only
    progress_bar: bool = True
    test: bool = True  # score the best checkpoint on the test split (tuning trials do not)
    # exceptions that stop a training on purpose (a pruned trial): the job is 'cancelled',
    # the run KILLED, and the exception goes up unwrapped
    stop_errors: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True, kw_only=True)
class _Started:
    job_id: uuid.UUID
    run: TrackedRun


def train(
    conn: Connection,
    tracker: Tracker,
    params: TrainParams,
    paths: TrainPaths,
    options: TrainOptions | None = None,
) -> TrainOutcome:
    """Train ``params.architecture`` on the converted layouts; every failure after the job
    row exists marks the job failed and the run FAILED, then raises TrainingError."""
    opts = options or TrainOptions()
    arch = architectures.get(params.architecture)
    snapshot = _read_json(paths.snapshot / "snapshot.json", "run `dvc repro snapshot`")
    classes = Layout(root=paths.converted).classes()
    if list(classes) != list(snapshot["dataset"]["classes"]):
        raise ConfigError(
            f"{paths.converted}: classes {list(classes)} differ from the snapshot's "
            f"{snapshot['dataset']['classes']}; re-run `dvc repro convert`"
        )
    config = {"architecture": arch.name, "task": arch.task, "seed": opts.seed, **params.as_dict()}
    started = _resume(conn, tracker, paths) if opts.resume else None
    if started is None:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        started = _start(conn, tracker, params, paths, snapshot, config, opts.parent_run_id)
    job_id, run = started.job_id, started.run
    try:
        L.seed_everything(opts.seed, workers=True, verbose=False)
        request = fit.FitRequest(
            params=params,
            classes=classes,
            converted=paths.converted,
            snapshot=paths.snapshot,
            checkpoints=paths.checkpoints,
            monitor=arch.monitor,
            hooks=[_tracking_hook(run), _progress_hook(conn, job_id), *opts.hooks],
            callbacks=opts.callbacks,
            resume=opts.resume,
            progress_bar=opts.progress_bar,
            test=opts.test,
        )
        result = arch.fit(request)
        model = _publish(paths, result, classes, config, run)
        metrics = {**result.metrics, f"best_{arch.monitor.metric}": result.best_score}
        run.log_metrics({f"best_{arch.monitor.metric}": result.best_score}, step=result.epochs)
        provenance.record_from_snapshot(
            conn,
            model_version=run.run_id,
            snapshot_dir=paths.snapshot,
            export_params={"architecture": arch.name, "image_size": params.image_size},
        )
        jobs.succeed(conn, job_id, metrics, run.run_id)
        run.finish()
    except opts.stop_errors as exc:
        _stopped(conn, job_id, run, exc)
        raise
    except BaseException as exc:
        _fail(conn, job_id, run, exc)
        if isinstance(exc, ModelyardError | KeyboardInterrupt):
            raise
        raise TrainingError(f"training {arch.name} failed: {exc}") from exc
    shown = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if "map" in k or "acc" in k
    )
    log.info("trained %s: %s (MLflow run %s)", arch.name, shown, run.run_id)
    return TrainOutcome(
        run_id=run.run_id, job_id=job_id, model=model, best_score=result.best_score, metrics=metrics
    )


def _start(
    conn: Connection,
    tracker: Tracker,
    params: TrainParams,
    paths: TrainPaths,
    snapshot: dict[str, Any],
    config: dict[str, Any],
    parent_run_id: str | None,
) -> _Started:
    job_id = jobs.create(
        conn, kind=f"train:{params.architecture}", dataset_id=snapshot["dataset"]["id"]
    )
    try:
        tags = lineage.lineage_tags(
            snapshot=snapshot,
            config=config,
            repo=paths.repo,
            inputs=[paths.converted, paths.snapshot],
        )
        tags.update(
            {"modelyard.job_id": str(job_id), "modelyard.architecture": params.architecture}
        )
        run = tracker.start_run(
            params.experiment, run_name=params.architecture, tags=tags, parent_run_id=parent_run_id
        )
    except BaseException as exc:
        jobs.fail(conn, job_id, f"could not start the MLflow run: {exc}", None)
        raise
    run.log_params(config)
    jobs.start(conn, job_id, mlflow_run_id=run.run_id)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    state = {"job_id": str(job_id), "mlflow_run_id": run.run_id, "config": config}
    (paths.checkpoints / STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return _Started(job_id=job_id, run=run)


def _resume(conn: Connection, tracker: Tracker, paths: TrainPaths) -> _Started:
    state_file, last = paths.checkpoints / STATE, paths.checkpoints / fit.LAST
    if not (state_file.is_file() and last.is_file()):
        raise ConfigError(
            f"{paths.checkpoints}: nothing to resume (no {fit.LAST} and {STATE}); "
            "train without --resume"
        )
    state = json.loads(state_file.read_text(encoding="utf-8"))
    job_id = uuid.UUID(state["job_id"])
    run = tracker.reopen(state["mlflow_run_id"])
    jobs.progress(conn, job_id, jobs.get(conn, job_id)["progress"], "resumed from last.ckpt")
    jobs.start(conn, job_id, mlflow_run_id=run.run_id)
    return _Started(job_id=job_id, run=run)


def _publish(
    paths: TrainPaths,
    result: fit.FitResult,
    classes: tuple[str, ...],
    config: dict[str, Any],
    run: TrackedRun,
) -> Path:
    """Copy the best checkpoint and its class map and config to ``paths.out``; log them."""
    shutil.rmtree(paths.out, ignore_errors=True)
    paths.out.mkdir(parents=True)
    model = paths.out / f"model{result.best_checkpoint.suffix}"  # .ckpt (Lightning), .pt (YOLO)
    if model.suffix == ".ckpt":
        fit.publish_checkpoint(result.best_checkpoint, model)
    else:  # ultralytics strips its own
        shutil.copy2(result.best_checkpoint, model)
    files = {
        "classes.json": {"classes": list(classes)},
        "config.json": config,
        "run.json": {
            "mlflow_run_id": run.run_id,
            "best_score": result.best_score,
            "epochs": result.epochs,
        },
    }
    for name, content in files.items():
        (paths.out / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    run.log_artifacts([paths.out / "classes.json", paths.out / "config.json"])
    run.log_artifacts([model], "checkpoint")
    return model


def _tracking_hook(run: TrackedRun) -> EpochHook:
    """Per-epoch metrics into the MLflow run: one batch write an epoch, next to nothing
    beside an epoch of training."""

    def log_epoch(epoch: int, _: int, metrics: dict[str, float]) -> None:
        run.log_metrics(metrics, step=epoch)

    return log_epoch


def _progress_hook(conn: Connection, job_id: uuid.UUID) -> EpochHook:
    def report(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        line = f"epoch {epoch + 1}/{epochs} {shown}"
        log.info("%s", line)
        jobs.progress(conn, job_id, (epoch + 1) / max(1, epochs), line)

    return report


def _fail(conn: Connection, job_id: uuid.UUID, run: TrackedRun, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        jobs.fail(conn, job_id, message, run.run_id)
        run.finish(status="FAILED")
    except Exception:  # the original error matters more than a failure to record it
        log.exception("could not record the failure of job %s", job_id)


def _stopped(conn: Connection, job_id: uuid.UUID, run: TrackedRun, exc: BaseException) -> None:
    jobs.cancel(conn, job_id, f"stopped: {exc}", run.run_id)
    run.finish(status="KILLED")


def _read_json(path: Path, fix: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: missing; {fix}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
