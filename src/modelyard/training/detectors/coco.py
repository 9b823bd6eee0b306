"""The COCO layout written by ``convert`` as a torch Dataset and a LightningDataModule.

Images are resized to a square ``image_size`` (the exported models take a fixed input) and
scaled to [0, 1]. Targets follow the DETR convention: ``class_labels`` (0-based) and
``boxes`` as normalised (cx, cy, w, h); ``orig_size`` and ``image_id`` ride along so that
predictions can be scaled back and matched to the COCO ground truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from modelyard.errors import ConfigError

Target = dict[str, torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where ``convert`` put the COCO files: ``<root>/coco/<split>.json``."""

    root: Path

    def split_file(self, split: str) -> Path:
        path = self.root / "coco" / f"{split}.json"
        if not path.is_file():
            raise ConfigError(f"{path}: no COCO file for split '{split}'; run `dvc repro convert`")
        return path

    def classes(self) -> tuple[str, ...]:
        path = self.root / "classes.json"
        if not path.is_file():
            raise ConfigError(f"{path}: no class map; run `dvc repro convert`")
        return tuple(json.loads(path.read_text(encoding="utf-8"))["classes"])


def read_coco(coco_file: Path) -> tuple[dict[str, Any], Path]:
    """A ``convert`` COCO file and the folder its ``file_name``s are relative to."""
    coco: dict[str, Any] = json.loads(coco_file.read_text(encoding="utf-8"))
    return coco, (coco_file.parent / coco.get("images_root", ".")).resolve()


class CocoDetection(Dataset[tuple[torch.Tensor, Target]]):
    """One split of a COCO file, as (image CHW float in [0, 1], target)."""

    def __init__(self, coco_file: Path, image_size: int, *, flip: bool = False) -> None:
        coco, self.images_root = read_coco(coco_file)
        self.images: list[dict[str, Any]] = coco["images"]
        self.boxes: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in self.images}
        for ann in coco["annotations"]:
            self.boxes[ann["image_id"]].append(ann)
        self.image_size = image_size
        self.flip = flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        info = self.images[index]
        with Image.open(self.images_root / info["file_name"]) as img:
            rgb = img.convert("RGB").resize(
                (self.image_size, self.image_size), Image.Resampling.BILINEAR
            )
        pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
        w, h = float(info["width"]), float(info["height"])
        anns = self.boxes[info["id"]]
        boxes = torch.tensor(
            [
                [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
                for x, y, bw, bh in (a["bbox"] for a in anns)
            ],
            dtype=torch.float32,
        ).reshape(-1, 4)
        labels = torch.tensor([a["category_id"] - 1 for a in anns], dtype=torch.int64)
        if self.flip and bool(torch.rand(()) < 0.5):  # seeded by the trainer
            pixels = pixels.flip(-1)
            boxes[:, 0] = 1.0 - boxes[:, 0]
        target = {
            "class_labels": labels,
            "boxes": boxes.clamp(0.0, 1.0),
            "image_id": torch.tensor(info["id"]),
            "orig_size": torch.tensor([h, w]),
        }
        return pixels, target


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


class CocoDataModule(L.LightningDataModule):
    """train / validation / test loaders over the ``convert`` layout."""

    def __init__(
        self, root: Path, *, image_size: int, batch_size: int, num_workers: int = 0
    ) -> None:
        super().__init__()
        self.layout = Layout(root=root)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers

    def split(self, name: str, *, flip: bool = False) -> CocoDetection:
        return CocoDetection(self.layout.split_file(name), self.image_size, flip=flip)

    def _loader(self, data: CocoDetection, *, shuffle: bool) -> DataLoader[Any]:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.split("train", flip=True), shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.split("validation"), shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.split("test"), shuffle=False)
