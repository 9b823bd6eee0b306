"""RT-DETRv2 (ResNet-18) learns: a few optimiser steps on tiny data lower its loss, and its
decoded predictions come back as pixel boxes in the original image size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelyard.training.detectors.coco import CocoDataModule, collate
from modelyard.training.detectors.rtdetr import RtDetrModule, decode, ground_truth
from tests.training.conftest import tiny_params


@pytest.mark.postgres
def test_loss_falls_over_a_few_steps(prepared: dict[str, Path]) -> None:
    torch.manual_seed(0)
    params = tiny_params()
    module = RtDetrModule(
        classes=("car", "person", "sign"), shape=params.rtdetr, lr=params.lr, weight_decay=0.0
    )
    data = CocoDataModule(prepared["converted"], image_size=64, batch_size=8)
    batch = collate([data.split("train")[i] for i in range(8)])
    optimizer = module.configure_optimizers()
    losses = []
    for step in range(12):
        loss = module.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_decode_returns_top_scoring_boxes_in_pixels() -> None:
    logits = torch.full((1, 3, 2), -10.0)
    logits[0, 1, 0] = 5.0  # query 1, class 0: the one confident prediction
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.25, 0.5, 0.1, 0.2], [0.9, 0.9, 0.1, 0.1]]])
    sizes = torch.tensor([[100.0, 200.0]])  # height, width
    (pred,) = decode(logits, boxes, sizes, top_k=2)
    assert pred["labels"][0] == 0
    assert torch.allclose(pred["boxes"][0], torch.tensor([40.0, 40.0, 60.0, 60.0]))
    assert pred["scores"][0] > 0.99 > pred["scores"][1]


def test_ground_truth_is_pixel_xyxy() -> None:
    target = {
        "class_labels": torch.tensor([2]),
        "boxes": torch.tensor([[0.5, 0.5, 0.5, 0.25]]),
        "orig_size": torch.tensor([100.0, 200.0]),
    }
    (truth,) = ground_truth([target])
    assert torch.allclose(truth["boxes"], torch.tensor([[50.0, 37.5, 150.0, 62.5]]))
    assert truth["labels"].tolist() == [2]
