"""Raw outputs -> predictions, the same code for PyTorch and every runtime, so that parity
compares what a device would act on: detections in the image's own pixels, or one score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import batched_nms

Detections = dict[str, np.ndarray]  # boxes (K, 4) pixel xyxy, scores (K,), labels (K,)

MAX_DETECTIONS = 100
YOLO_MIN_SCORE = 0.001  # what mAP is scored on (ultralytics' own validation uses the same)
YOLO_NMS_IOU = 0.7


def family(architecture: str) -> str:
    """How a detector's outputs are decoded: ``rtdetr`` or ``yolo``."""
    return "rtdetr" if architecture.startswith("rt-detr") else "yolo"


def detections(
    family: str, outputs: Sequence[np.ndarray], sizes: np.ndarray, image_size: int
) -> list[Detections]:
    """Per image, up to ``MAX_DETECTIONS`` detections; ``sizes`` rows are (height, width)."""
    hw = torch.from_numpy(np.asarray(sizes, dtype=np.float32))
    if family == "rtdetr":
        from modelyard.training.detectors.rtdetr import decode as rtdetr_decode  # transformers

        logits, boxes = (torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in outputs)
        decoded = rtdetr_decode(logits, boxes, hw, top_k=MAX_DETECTIONS)
    elif family == "yolo":
        raw = torch.from_numpy(np.asarray(outputs[0], dtype=np.float32))
        decoded = [_yolo_image(raw[i], hw[i], image_size) for i in range(raw.shape[0])]
    else:
        raise ValueError(f"no detection decoder for family '{family}'")
    return [{k: v.numpy() for k, v in d.items()} for d in decoded]


def _yolo_image(raw: torch.Tensor, size: torch.Tensor, image_size: int) -> dict[str, torch.Tensor]:
    """One image's (4 + classes, anchors): score threshold, class-aware NMS, top detections."""
    cxcywh, class_scores = raw[:4].T, raw[4:].T
    scores, labels = class_scores.max(dim=1)
    keep = scores >= YOLO_MIN_SCORE
    cxcywh, scores, labels = cxcywh[keep], scores[keep], labels[keep]
    cx, cy, w, h = cxcywh.unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    kept = batched_nms(xyxy, scores, labels, YOLO_NMS_IOU)[:MAX_DETECTIONS]
    scale = torch.stack([size[1], size[0], size[1], size[0]]) / image_size
    return {"boxes": xyxy[kept] * scale, "scores": scores[kept], "labels": labels[kept]}


def values(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Image heads: one value per image (a probability, or a 0-5 rating)."""
    return np.asarray(outputs[0], dtype=np.float64).reshape(-1)
