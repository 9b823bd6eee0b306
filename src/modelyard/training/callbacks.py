"""Lightning callbacks that report a training outward: to the MLflow run, and to whoever
follows the job (its database row)."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L

from modelyard.tracking import TrackedRun

Report = Callable[[float, str], None]


def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The metrics Lightning holds at the end of an epoch, as finite floats."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        number = float(value)
        if math.isfinite(number):
            out[key] = number
    return out


class TrackingCallback(L.Callback):
    """Per-epoch metrics into the MLflow run (one batch write per epoch, so logging costs
    next to nothing next to an epoch of training)."""

    def __init__(self, run: TrackedRun) -> None:
        self.run = run

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = epoch_metrics(trainer)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        if optimizer is not None:
            metrics["lr"] = float(optimizer.param_groups[0]["lr"])
        self.run.log_metrics(metrics, step=trainer.current_epoch)


class ProgressCallback(L.Callback):
    """Calls ``report(fraction done, one line)`` after every epoch."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        done = (trainer.current_epoch + 1) / max(1, trainer.max_epochs or 1)
        shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(epoch_metrics(trainer).items()))
        self.report(done, f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {shown}")
