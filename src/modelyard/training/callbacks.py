"""Reporting a training outward, whatever trains it: an epoch hook is called after every
epoch's validation with (epoch index, epochs planned, metrics). Hooks feed the MLflow run and
the job row; ``HookCallback`` calls them from Lightning, the YOLO wrapper from ultralytics."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L

EpochHook = Callable[[int, int, dict[str, float]], None]


def finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are finite numbers, as floats."""
    out = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[key] = number
    return out


def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The metrics Lightning holds at the end of an epoch, with the learning rate."""
    metrics = finite(trainer.callback_metrics)
    if trainer.optimizers:
        metrics["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
    return metrics


class HookCallback(L.Callback):
    """Calls the epoch hooks after each epoch (validation included) on the main process."""

    def __init__(self, hooks: Sequence[EpochHook]) -> None:
        self.hooks = list(hooks)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = epoch_metrics(trainer)
        for hook in self.hooks:
            hook(trainer.current_epoch, int(trainer.max_epochs or 1), metrics)
