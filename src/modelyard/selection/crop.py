"""The crop proposer: from a photo's features to the normalised box ``[x1, y1, x2, y2]`` a
person would crop it to.

A small MLP predicts the box's centre and size through sigmoids (so every box lies in the
image with x1 < x2, y1 < y2), trained with an L1 loss on the four edges; its input
standardisation is fitted on the training crops and carried in the network, so the ONNX
takes raw features (``features``, N x F) and returns ``box`` (N x 4).

Measures, on normalised coordinates: IoU; boundary displacement error (BDE: the mean of the
four edges' absolute displacement); and the distance between the two boxes' centres. The
baselines: the whole image, and a centred box of the training crops' mean size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

INPUT, OUTPUT = "features", "box"
MIN_SIDE = 0.05


@dataclass(frozen=True, kw_only=True)
class CropParams:
    hidden: tuple[int, ...] = (32,)
    epochs: int = 400
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0


class BoxNetwork(nn.Module):
    x_mean: torch.Tensor
    x_std: torch.Tensor

    def __init__(self, n_features: int, params: CropParams) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in params.hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, 4))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = torch.sigmoid(self.mlp((x - self.x_mean) / self.x_std))
        side = MIN_SIDE + (1 - MIN_SIDE) * raw[:, 2:]
        centre = side / 2 + (1 - side) * raw[:, :2]  # the box stays inside the image
        return torch.cat([centre - side / 2, centre + side / 2], dim=1)


def train(x: np.ndarray, boxes: np.ndarray, params: CropParams) -> BoxNetwork:
    torch.manual_seed(params.seed)
    network = BoxNetwork(x.shape[1], params)
    std = x.std(axis=0)
    network.x_mean.copy_(torch.from_numpy(x.mean(axis=0)))
    network.x_std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))
    features, target = torch.from_numpy(x), torch.from_numpy(boxes.astype(np.float32))
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    network.train()
    for _ in range(params.epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.l1_loss(network(features), target)
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
