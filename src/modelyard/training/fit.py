"""Run a LightningModule + LightningDataModule to the best checkpoint: validation every
epoch, the best checkpoint by the architecture's metric, early stopping, and ``last.ckpt``
after every epoch so that a killed training resumes where it stopped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

from modelyard.training.callbacks import EpochHook, HookCallback, epoch_metrics
from modelyard.training.config import TrainParams

log = logging.getLogger(__name__)

LAST = "last.ckpt"
# what a published checkpoint keeps: enough for ``Module.load_from_checkpoint``; the optimizer
# and loop state (two thirds of an AdamW checkpoint) only matter to --resume
PUBLISHED_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch",
                  "global_step")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Monitor:
    metric: str
    mode: str  # "max" or "min"


@dataclass(frozen=True, kw_only=True)
class FitResult:
    best_checkpoint: Path
    best_score: float
    epochs: int
    metrics: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class FitRequest:
    """What an architecture's fit is given."""

    params: TrainParams
    classes: tuple[str, ...]
    converted: Path  # the `convert` layouts
    snapshot: Path  # the snapshot's manifests (labels for the image-level heads)
    checkpoints: Path  # best and last checkpoints (last: for resume)
    monitor: Monitor
    hooks: Sequence[EpochHook] = ()
    callbacks: Sequence[L.Callback] = ()  # extra Lightning callbacks (Lightning ones only)
    resume: bool = False
    progress_bar: bool = True
    test: bool = True  # score the best checkpoint on the test split


def lightning_fit(
    module: L.LightningModule, data: L.LightningDataModule, request: FitRequest
) -> FitResult:
    """Train with Lightning; with ``resume`` continue from ``checkpoints/last.ckpt``."""
    params, monitor, checkpoints = request.params, request.monitor, request.checkpoints
    best = ModelCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=monitor.metric,
        mode=monitor.mode,
        save_last=True,
        enable_version_counter=False,
    )
    stop = EarlyStopping(monitor=monitor.metric, mode=monitor.mode, patience=params.patience)
    extra: list[L.Callback] = [RichProgressBar()] if request.progress_bar else []
    dist = params.distributed
    trainer = L.Trainer(
        max_epochs=params.epochs,
        accelerator=dist.accelerator,
        devices=dist.devices,
        strategy=dist.strategy,
        num_nodes=dist.num_nodes,
        precision=params.precision,  # type: ignore[arg-type]
        gradient_clip_val=params.gradient_clip or None,
        callbacks=[best, stop, HookCallback(request.hooks), *request.callbacks, *extra],
        logger=False,
        enable_progress_bar=request.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    ckpt_path = checkpoints / LAST if request.resume else None
    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    score = best.best_model_score
    best_path = Path(best.best_model_path or checkpoints / LAST)
    metrics = epoch_metrics(trainer)
    if request.test:  # the held-out split, scored once with the best checkpoint
        trainer.test(module, datamodule=data, ckpt_path=best_path, verbose=False)
        metrics.update(epoch_metrics(trainer))
    return FitResult(
        best_checkpoint=best_path,
        best_score=float(score) if score is not None else float("nan"),
        epochs=trainer.current_epoch,
        metrics=metrics,
    )


def publish_checkpoint(source: Path, target: Path) -> None:
    """Write ``source`` to ``target`` without its optimizer and loop state."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    torch.save({k: checkpoint[k] for k in PUBLISHED_KEYS if k in checkpoint}, target)
