"""The images parity and calibration run on, already in the form the model takes (resized,
scaled, normalised, N x 3 x S x S float32), with the test split's ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.errors import ConfigError
from modelyard.export.source import ExportModel
from modelyard.training.classifier import LabelledImages, read_split
from modelyard.training.detectors.coco import CocoDetection, Layout


@dataclass(frozen=True, kw_only=True)
class Samples:
    images: np.ndarray  # N x 3 x S x S float32
    names: tuple[str, ...]  # file names, for reports
    sample_ids: tuple[str, ...]  # the registry's sample ids, to join metadata
    targets: list[Any]  # detectors: dicts of pixel xyxy boxes and labels; heads: floats
    sizes: np.ndarray  # N x 2, each image's original (height, width)


@dataclass(frozen=True, kw_only=True)
class SamplePaths:
    converted: Path  # convert's output (COCO files and the image folder)
    snapshot: Path  # the manifests, for image heads' labels


def load(model: ExportModel, paths: SamplePaths, split: str, limit: int | None = None) -> Samples:
    """``split``'s images (at most ``limit``, spread evenly over it) for ``model``."""
    size = model.input.shape[-1]
    if model.task == "detect":
        data: Any = CocoDetection(Layout(root=paths.converted).split_file(split), size)
        names = [str(info["file_name"]) for info in data.images]
        ids = [str(info.get("sample_id", "")) for info in data.images]
    else:
        rows = read_split(
            paths.converted, paths.snapshot, split, target=model.target, good=model.good_threshold
        )
        data = LabelledImages(rows, size, augment=False)
        names = [row.path.name for row in rows]
        ids = [row.sample_id for row in rows]
    if not len(data):
        raise ConfigError(f"split '{split}' has no images to check the export on")
    picked = spread(len(data), limit)
    images, sizes = [], []
    targets: list[Any] = []
    for index in picked:
        pixels, target = data[index]
        images.append(pixels.numpy())
        if model.task == "detect":
            targets.append(_pixel_boxes(target))
            sizes.append(target["orig_size"].numpy())
        else:
            targets.append(float(target))
            sizes.append(np.array([size, size], dtype=np.float32))
    return Samples(
        images=np.stack(images).astype(np.float32),
        names=tuple(names[i] for i in picked),
        sample_ids=tuple(ids[i] for i in picked),
        targets=targets,
        sizes=np.stack(sizes).astype(np.float32),
    )


def spread(count: int, limit: int | None) -> list[int]:
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({round(i * (count - 1) / max(1, limit - 1)) for i in range(limit)})


def _pixel_boxes(target: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    h, w = target["orig_size"].tolist()
    cx, cy, bw, bh = target["boxes"].unbind(-1)
    xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
    return {
        "boxes": (xyxy * torch.tensor([w, h, w, h])).numpy(),
        "labels": target["class_labels"].numpy(),
    }
