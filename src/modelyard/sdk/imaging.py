"""What a device does to an image before and after its model, in numpy alone, so that the
promotion reference, the ``modelyard score`` job and a device compute the same numbers:

* ``pixels``: the image as an artifact's manifest says to feed it (size, scale, mean, std,
  layout);
* ``qualities``: mean luma, its standard deviation, log10(1 + variance of the Laplacian);
* ``yolo`` / ``rtdetr``: raw detector outputs -> boxes in the image's own pixels, the same
  rules as the export's decoder (class-aware NMS at IoU 0.7 above score 0.001 for YOLO; the
  top (query, class) pairs by sigmoid for RT-DETR; at most ``MAX_DETECTIONS``);
* ``calibrate``: a shipped ``calibration.json`` applied (linear interpolation of its table,
  per class where it has one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

MAX_DETECTIONS = 100
YOLO_MIN_SCORE = 0.001
YOLO_NMS_IOU = 0.7
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)

Detections = dict[str, np.ndarray]  # boxes (K, 4) pixel xyxy, scores (K,), labels (K,)


def pixels(image: Image.Image, spec: Mapping[str, Any]) -> np.ndarray:
    """One image (no batch axis) as the manifest's ``input`` spec says a device feeds it."""
    shape = spec["shape"]
    layout = spec.get("layout", "NCHW")
    height, width = (shape[1], shape[2]) if layout == "NHWC" else (shape[2], shape[3])
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    x: np.ndarray = (np.asarray(resized, dtype=np.float32) * np.float32(spec["scale"]) - mean) / std
    return x if layout == "NHWC" else x.transpose(2, 0, 1).copy()


def qualities(image: Image.Image) -> tuple[float, float, float]:
    """(brightness, contrast, blur) of one image, on its luma."""
    luma = np.asarray(image.convert("L"), dtype=np.float32)
    padded = np.pad(luma, 1, mode="edge")
    lap = sum(
        _LAPLACIAN[i, j] * padded[i : i + luma.shape[0], j : j + luma.shape[1]]
        for i in range(3)
        for j in range(3)
        if _LAPLACIAN[i, j]
    )
    return float(luma.mean()), float(luma.std()), float(np.log10(1.0 + np.var(lap)))


def yolo(raw: np.ndarray, size: tuple[int, int], image_size: int) -> Detections:
    """One image's (4 + classes, anchors) output; ``size`` is (height, width)."""
    raw = np.asarray(raw, dtype=np.float32)
    cxcywh, class_scores = raw[:4].T, raw[4:].T
    labels = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(labels)), labels]
    keep = scores >= YOLO_MIN_SCORE
    cxcywh, scores, labels = cxcywh[keep], scores[keep], labels[keep]
    cx, cy, w, h = cxcywh.T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    kept = _batched_nms(xyxy, scores, labels, YOLO_NMS_IOU)[:MAX_DETECTIONS]
    height, width = size
    scale = np.array([width, height, width, height], dtype=np.float32) / np.float32(image_size)
    return {"boxes": xyxy[kept] * scale, "scores": scores[kept], "labels": labels[kept]}


def rtdetr(logits: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> Detections:
    """One image's (queries, classes) logits and (queries, 4) normalised cxcywh boxes."""
    queries, n_cls = logits.shape
    flat = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float32).reshape(-1)))
    top = np.argsort(-flat, kind="stable")[: min(MAX_DETECTIONS, queries * n_cls)]
    query, label = top // n_cls, top % n_cls
    cx, cy, w, h = np.asarray(boxes, dtype=np.float32)[query].T
    height, width = size
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    xyxy = xyxy * np.array([width, height, width, height], dtype=np.float32)
    return {"boxes": xyxy, "scores": flat[top], "labels": label}


def _batched_nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float
) -> np.ndarray:
    """Indices kept by greedy NMS within each class, best score first (a box goes when its
    IoU with a kept box of its class is above ``iou``)."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    offset = labels.astype(np.float32)[:, None] * (boxes.max() + 1)
    b = boxes + offset  # classes never overlap
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(overlap > iou)]
    return np.asarray(keep, dtype=np.int64)


def calibrate(
    calibration: Mapping[str, Any] | None, scores: np.ndarray, labels: np.ndarray,
    classes: Sequence[str],
) -> np.ndarray:  # fmt: skip
    """``scores`` through the shipped calibration (as they are without one)."""
    raw = np.asarray(scores, dtype=np.float64)
    if calibration is None:
        return raw
    default = calibration["default"]
    out: np.ndarray = np.interp(raw, default["x"], default["y"])
    per_class = calibration.get("per_class", {})
    for index, name in enumerate(classes):
        if name in per_class:
            mask = np.asarray(labels) == index
            out[mask] = np.interp(raw[mask], per_class[name]["x"], per_class[name]["y"])
    return out
