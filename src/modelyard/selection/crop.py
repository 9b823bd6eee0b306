"""The crop proposer: from a photo to the normalised box ``[x1, y1, x2, y2]`` a person would
crop it to.

A crop is drawn around something, wherever it sits in the frame, so the network is
translation-equivariant where it matters: three small convolutions give a heat map of where
the crop's centre lies, and the centre is the heat map's soft-argmax (the expected grid
position), which a few hundred crops are enough to learn. The box's width and height come
from the features under the heat map and of the whole frame, through a sigmoid. The box is
then slid inside the image, so every prediction has 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
whatever the input. Trained full-batch with an L1 loss on the four edges, on each photo and
its left-right mirror; the ONNX takes the
photo (``image``, N x 3 x S x S in [0, 1], S = ``image_size``) and returns ``box`` (N x 4).

Measures, on normalised coordinates: IoU; boundary displacement error (BDE: the mean of the
four edges' absolute displacement); and the distance between the two boxes' centres. The
baselines: the whole image, and a centred box of the training crops' mean size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

INPUT, OUTPUT = "image", "box"
MIN_SIDE = 0.05


@dataclass(frozen=True, kw_only=True)
class CropParams:
    image_size: int = 64
    width: int = 8  # channels of each convolution
    epochs: int = 500
    learning_rate: float = 1e-2
    weight_decay: float = 1e-3
    mirror: bool = True  # train on each photo's left-right mirror too
    seed: int = 0


class BoxNetwork(nn.Module):
    def __init__(self, params: CropParams) -> None:
        super().__init__()
        w = params.width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, w, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, w, 3, padding=1),
            nn.GELU(),
        )
        self.heat = nn.Conv2d(w, 1, 1)
        self.size = nn.Linear(2 * w, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f = self.features(image)
        n, _, h, w = f.shape
        heat = self.heat(f).flatten(1).softmax(1).view(n, 1, h, w)
        xs = (torch.arange(w, dtype=image.dtype) + 0.5) / w
        ys = (torch.arange(h, dtype=image.dtype) + 0.5) / h
        centre = torch.stack([(heat.sum(2)[:, 0] * xs).sum(1), (heat.sum(3)[:, 0] * ys).sum(1)], 1)
        pooled = torch.cat([(f * heat).sum((2, 3)), f.mean((2, 3))], 1)
        side = MIN_SIDE + (1 - MIN_SIDE) * torch.sigmoid(self.size(pooled))
        low = torch.minimum((centre - side / 2).clamp(min=0.0), 1 - side)  # slid inside
        return torch.cat([low, low + side], dim=1)


def to_input(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """Photos as the network takes them: RGB, ``size`` x ``size``, N x 3 x S x S in [0, 1]."""
    if not images:
        return np.zeros((0, 3, size, size), np.float32)
    arrays = [
        np.asarray(i.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32)
        for i in images
    ]
    return (np.stack(arrays) / 255).transpose(0, 3, 1, 2).copy()


def mirrored(x: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photos and their crops with each photo's left-right mirror added: a crop around
    something is still around it in the mirror, and the training crops double."""
    flipped = boxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([1, 0, 1, 0])
    return (
        np.concatenate([x, x[..., ::-1]]).astype(np.float32),
        np.concatenate([boxes, flipped]).astype(np.float32),
    )


def train(x: np.ndarray, boxes: np.ndarray, params: CropParams) -> BoxNetwork:
    torch.manual_seed(params.seed)
    network = BoxNetwork(params)
    if params.mirror:
        x, boxes = mirrored(x, boxes)
    images, target = torch.from_numpy(x), torch.from_numpy(boxes.astype(np.float32))
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    network.train()
    for _ in range(params.epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.l1_loss(network(images), target)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    return network.eval()


def predict(network: BoxNetwork, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out: np.ndarray = network(torch.from_numpy(x)).numpy()
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two N x 4 arrays of [x1, y1, x2, y2]."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: np.ndarray = inter / np.maximum(area_a + area_b - inter, 1e-12)
    return out


def bde(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boundary displacement error: the mean absolute displacement of the four edges."""
    out: np.ndarray = np.abs(a - b).mean(axis=1)
    return out


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    out: np.ndarray = np.linalg.norm(ca - cb, axis=1)
    return out


def measures(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    if len(truth) == 0:
        return {
            "mean_iou": float("nan"),
            "bde": float("nan"),
            "centre_distance": float("nan"),
            "n": 0,
        }
    return {
        "mean_iou": round(float(iou(predicted, truth).mean()), 4),
        "bde": round(float(bde(predicted, truth).mean()), 4),
        "centre_distance": round(float(centre_distance(predicted, truth).mean()), 4),
        "n": len(truth),
    }


def whole_image(n: int) -> np.ndarray:
    return np.tile(np.array([0.0, 0.0, 1.0, 1.0]), (n, 1))


def centre_crop(train_boxes: np.ndarray, n: int) -> np.ndarray:
    """A centred box of the training crops' mean width and height."""
    w = float((train_boxes[:, 2] - train_boxes[:, 0]).mean())
    h = float((train_boxes[:, 3] - train_boxes[:, 1]).mean())
    return np.tile(np.array([0.5 - w / 2, 0.5 - h / 2, 0.5 + w / 2, 0.5 + h / 2]), (n, 1))


def by_stage(
    predicted: np.ndarray, truth: np.ndarray, stages: Sequence[int | None]
) -> dict[str, dict[str, float]]:
    out = {}
    keys = np.asarray([-1 if s is None else s for s in stages])
    for stage in sorted(set(keys.tolist())):
        mask = keys == stage
        out["none" if stage == -1 else str(stage)] = measures(predicted[mask], truth[mask])
    return out
