"""Image-level heads on torchvision backbones (``resnet18``, ``mobilenet_v3_small``): a binary
classifier (``is_compliant``, or ``is_good`` = rating >= a threshold) and a 0-5 regressor on
``label_value``.

Images come from the ``convert`` COCO files (so they are the downloaded, verified ones); the
labels from the snapshot's manifests, joined by sample id. A row without the label its head
needs is left out and counted. Random init by default; ``train.weights`` loads a torchvision
state dict from a local path (the head is re-sized).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError
from torchvision import models
from torchvision.transforms import v2

from modelyard.errors import ConfigError, TrainingError
from modelyard.training.detectors.coco import Layout, read_coco

log = logging.getLogger(__name__)

BACKBONES = ("resnet18", "mobilenet_v3_small")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True)
class Labelled:
    path: Path
    target: float
    sample_id: str = ""


def read_split(
    converted: Path, snapshot: Path, split: str, *, target: str, good: float
) -> list[Labelled]:
    """The images of ``split`` with the label ``target`` asks for; unlabelled rows are left out."""
    import pandas as pd

    coco, root = read_coco(Layout(root=converted).split_file(split))
    labels = pd.read_csv(snapshot / f"manifest_{split}.csv", dtype=str, keep_default_na=False)
    by_id = labels.set_index("sample_id")
    rows, skipped = [], 0
    for image in coco["images"]:
        row = by_id.loc[image["sample_id"]]
        value = _target(row, target, good)
        if value is None:
            skipped += 1
            continue
        rows.append(
            Labelled(path=root / image["file_name"], target=value, sample_id=image["sample_id"])
        )
    if skipped:
        log.info("%s: %d rows without a %s label left out", split, skipped, target)
    if not rows:
        raise TrainingError(
            f"split '{split}' has no rows with a {target} label; nothing to train on"
        )
    return rows


def _target(row: Any, target: str, good: float) -> float | None:
    if target == "is_compliant":
        flag = row["is_compliant"]
        return {"true": 1.0, "false": 0.0}.get(flag)
    if row["label_value"] == "":
        return None
    value = float(row["label_value"])
    return float(value >= good) if target == "is_good" else value


class LabelledImages(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, rows: list[Labelled], image_size: int, *, augment: bool) -> None:
        self.rows = rows
        steps: list[Any] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        if augment:  # light: crop, flip, colour
            steps += [
                v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
            ]
        else:
            steps.append(v2.Resize((image_size, image_size), antialias=True))
        self.transform = v2.Compose([*steps, v2.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.rows[index]
        with Image.open(row.path) as img:
            pixels = self.transform(img.convert("RGB"))
        return pixels, torch.tensor(row.target, dtype=torch.float32)


class LabelledDataModule(L.LightningDataModule):
    def __init__(
        self, converted: Path, snapshot: Path, *, target: str, good: float, image_size: int,
        batch_size: int, num_workers: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.converted, self.snapshot = converted, snapshot
        self.target, self.good = target, good
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers

    def _loader(self, split: str, *, train: bool) -> DataLoader[Any]:
        rows = read_split(self.converted, self.snapshot, split, target=self.target, good=self.good)
        return DataLoader(
            LabelledImages(rows, self.image_size, augment=train),
            batch_size=self.batch_size,
            shuffle=train,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("validation", train=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", train=False)


def backbone(name: str, weights: str | None) -> nn.Module:
    """A torchvision backbone with one output; weights from a local state dict when given."""
    if name not in BACKBONES:
        raise ConfigError(f"backbone '{name}' is not one of {', '.join(BACKBONES)}")
    net: nn.Module = getattr(models, name)(weights=None, num_classes=1)
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"train.weights: {path} is not a file (a torchvision state dict)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = net.state_dict()
        kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(kept, strict=False)
        log.info("loaded %d of %d tensors from %s (the head is new)", len(kept), len(own), path)
    return net


class ImageHead(L.LightningModule):
    """Binary (``regress=False``: BCE on a logit) or 0-5 regression (smooth L1)."""

    def __init__(
        self, *, backbone_name: str, regress: bool, weights: str | None = None, lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        self.net = backbone(backbone_name, weights)
        self.regress, self.lr, self.weight_decay = regress, lr, weight_decay
        self.loss = nn.SmoothL1Loss() if regress else nn.BCEWithLogitsLoss()
        if regress:
            self.metrics = nn.ModuleDict(
                {"mae": MeanAbsoluteError(), "rmse": MeanSquaredError(squared=False)}
            )
        else:
            self.metrics = nn.ModuleDict(
                {"accuracy": BinaryAccuracy(), "auc": BinaryAUROC(), "f1": BinaryF1Score()}
            )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(pixels).squeeze(-1)
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        pixels, target = batch
        loss: torch.Tensor = self.loss(self(pixels), target)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._score("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._score("test", batch)

    def _score(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        pixels, target = batch
        out = self(pixels)
        self.log(f"{split}_loss", self.loss(out, target), on_epoch=True)
        pred = out if self.regress else out.sigmoid()
        metric: Any
        for name, metric in self.metrics.items():
            metric(pred, target if self.regress else target.int())
            self.log(f"{split}_{name}", metric, on_epoch=True, prog_bar=name in ("accuracy", "mae"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
