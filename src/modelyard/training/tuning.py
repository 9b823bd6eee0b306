"""Hyper-parameter tuning: an Optuna study kept in PostgreSQL, so that any number of worker
processes (on any number of machines) share one study; each trial is a training nested in
the worker's MLflow run, pruned through Lightning when it falls behind.

params.yaml ``tune``: ``trials`` (per worker; 0 turns tuning off), ``epochs`` per trial, the
pruner's patience, and ``space``: dotted train settings with their ranges, e.g.
``lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelyard.db.connection import Connection
from modelyard.errors import ConfigError, TrainingError
from modelyard.tracking import Tracker
from modelyard.training import architectures
from modelyard.training.config import TrainParams, setting, with_overrides
from modelyard.training.run import TrainOptions, TrainPaths, train

log = logging.getLogger(__name__)

TYPES = ("float", "int", "categorical")


@dataclass(frozen=True, kw_only=True)
class Dimension:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TuneParams:
    study: str = "modelyard-tune"
    trials: int = 0  # per worker; 0: no tuning, train uses params.yaml `train` as it is
    epochs: int = 3  # per trial
    pruner_startup_trials: int = 2  # trials that always run to the end
    pruner_warmup_epochs: int = 1  # epochs of a trial before it may be pruned
    space: Mapping[str, Any] = field(default_factory=dict)

    def dimensions(self) -> list[Dimension]:
        return [_dimension(name, spec) for name, spec in sorted(self.space.items())]


@dataclass(frozen=True, kw_only=True)
class TuneOutcome:
    study: str
    best_value: float | None
    best_params: dict[str, Any]
    trials: int  # in the whole study, every worker's
    run_id: str | None  # this worker's parent MLflow run


def _dimension(name: str, spec: Any) -> Dimension:
    where = f"tune.space.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'type', got {spec!r}")
    unknown = sorted(set(spec) - {"type", "low", "high", "log", "choices"})
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; valid: type, low, high, log, choices"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}.type: '{kind}' is not one of {', '.join(TYPES)}")
    if kind == "categorical":
        if not spec.get("choices"):
            raise ConfigError(f"{where}.choices: a categorical dimension needs a list of choices")
        return Dimension(name=name, type=kind, choices=tuple(spec["choices"]))
    low, high = spec.get("low"), spec.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float) or low >= high:
        raise ConfigError(f"{where}: needs numbers low < high, got low={low!r} high={high!r}")
    return Dimension(name=name, type=kind, low=low, high=high, log=bool(spec.get("log", False)))


def _suggest(trial: Any, dim: Dimension) -> Any:
    if dim.type == "categorical":
        return trial.suggest_categorical(dim.name, list(dim.choices))
    if dim.type == "int":
        return trial.suggest_int(dim.name, int(dim.low or 0), int(dim.high or 0), log=dim.log)
    return trial.suggest_float(dim.name, float(dim.low or 0), float(dim.high or 0), log=dim.log)


def tune(
    conn: Connection,
    tracker: Tracker,
    params: TrainParams,
    tuning: TuneParams,
    paths: TrainPaths,
    storage_url: str,
    worker: str,
) -> TuneOutcome:
    """Run ``tuning.trials`` trials of the shared study as worker ``worker``."""
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    arch = architectures.get(params.architecture)
    dims = tuning.dimensions()
    if not dims:
        raise ConfigError("tune.space: no dimensions to search; add e.g. lr: {type: float, ...}")
    for d in dims:
        setting(params, d.name, "tune.space")  # every name is a train setting
    seed = int(hashlib.sha256(worker.encode()).hexdigest()[:8], 16)  # workers sample apart
    study = optuna.create_study(
        study_name=tuning.study,
        storage=_storage(storage_url),
        load_if_exists=True,
        direction="maximize" if arch.monitor.mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=tuning.pruner_startup_trials,
            n_warmup_steps=tuning.pruner_warmup_epochs,
        ),
    )
    parent = tracker.start_run(
        params.experiment,
        run_name=f"tune:{tuning.study}:{worker}",
        tags={"modelyard.study": tuning.study, "modelyard.worker": worker},
    )

    def objective(trial: Any) -> float:
        values = {d.name: _suggest(trial, d) for d in dims}
        values.update(epochs=tuning.epochs, patience=tuning.epochs)
        trial.set_user_attr("worker", worker)
        with tempfile.TemporaryDirectory(prefix="modelyard-trial-") as scratch:
            trial_paths = replace(
                paths, out=Path(scratch) / "model", checkpoints=Path(scratch) / "ckpt"
            )
            # Lightning architectures prune through Optuna's Lightning callback, others
            # through an epoch hook that does the same
            pruning: dict[str, Any] = (
                {"callbacks": [PyTorchLightningPruningCallback(trial, arch.monitor.metric)]}
                if arch.lightning
                else {"hooks": [_pruning_hook(trial, arch.monitor.metric)]}
            )
            options = TrainOptions(
                parent_run_id=parent.run_id,
                progress_bar=False,
                **pruning,
                test=False,  # the test split plays no part in choosing
                stop_errors=(optuna.TrialPruned,),
            )
            outcome = train(
                conn, tracker, with_overrides(params, values, "tune"), trial_paths, options
            )
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        return outcome.best_score

    try:
        study.optimize(objective, n_trials=tuning.trials)
    except TrainingError:
        parent.finish("FAILED")
        raise
    parent.finish()
    return _outcome(study, tuning.study, parent.run_id)


def _pruning_hook(trial: Any, metric: str) -> Any:
    import optuna

    def prune(epoch: int, _: int, metrics: dict[str, float]) -> None:
        if metric in metrics:
            trial.report(metrics[metric], step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return prune


def _storage(url: str, attempts: int = 5) -> Any:
    """Optuna's RDB storage; workers started together on a new database race to create its
    tables, and the loser retries once the winner is done."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(1, attempts + 1):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == attempts:
                raise
            log.info("the study tables are being created elsewhere; retrying")
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _outcome(study: Any, name: str, run_id: str | None) -> TuneOutcome:
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return TuneOutcome(
            study=name, best_value=None, best_params={}, trials=len(study.trials), run_id=run_id
        )
    best = study.best_trial
    return TuneOutcome(
        study=name,
        best_value=float(best.value),
        best_params=dict(best.params),
        trials=len(study.trials),
        run_id=run_id,
    )


def untuned(study: str) -> TuneOutcome:
    """What ``tune`` yields with ``trials: 0``: no overrides."""
    return TuneOutcome(study=study, best_value=None, best_params={}, trials=0, run_id=None)
