"""The architectures ``train.architecture`` may name: a registry, not an if/elif chain.

Each entry says what task it learns, which validation metric picks its best checkpoint, and
how to build its LightningModule and LightningDataModule from the params and the class map.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from modelyard.errors import ConfigError
from modelyard.training.config import TrainParams
from modelyard.training.fit import Monitor

Builder = Callable[
    [TrainParams, tuple[str, ...], Path], tuple[L.LightningModule, L.LightningDataModule]
]


@dataclass(frozen=True, kw_only=True)
class Architecture:
    name: str
    task: str  # detect | classify | regress
    monitor: Monitor
    build: Builder
    summary: str


def _rtdetr(
    params: TrainParams, classes: tuple[str, ...], converted: Path
) -> tuple[L.LightningModule, L.LightningDataModule]:
    from modelyard.training.detectors.coco import CocoDataModule
    from modelyard.training.detectors.rtdetr import RtDetrModule

    module = RtDetrModule(
        classes=classes,
        shape=params.rtdetr,
        weights=params.weights,
        lr=params.lr,
        weight_decay=params.weight_decay,
    )
    data = CocoDataModule(
        converted,
        image_size=params.image_size,
        batch_size=params.batch_size,
        num_workers=params.num_workers,
    )
    return module, data


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            name="rt-detrv2-s",
            task="detect",
            monitor=Monitor(metric="val_map50", mode="max"),
            build=_rtdetr,
            summary="RT-DETRv2, ResNet-18 backbone (transformers), Lightning",
        ),
    )
}


def names() -> list[str]:
    return sorted(ARCHITECTURES)


def get(name: str) -> Architecture:
    """The architecture called ``name``; an unknown name is an error listing the valid ones."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    close = difflib.get_close_matches(name, names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(
        f"train.architecture: '{name}' is not known{hint}; valid: {', '.join(names())}"
    )
