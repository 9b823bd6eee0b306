"""Detection metrics under the COCO protocol, in numpy: mAP50, mAP50-95 and per-class AP (101
recall points, at most 100 detections per image and class, every box area), plus what a
person reads at one operating threshold (precision, recall, F1, a confusion matrix) and each
detection's outcome (matched or not) for calibration.

The matching is pycocotools' ``evaluateImg``: detections in descending score order each take
the unmatched ground-truth box of the same class with the highest IoU at or above the
threshold. ``tests/evaluation`` checks the figures against pycocotools on the same boxes.

Predictions and truth are per image: ``{"boxes": (K, 4) pixel xyxy, "scores": (K,),
"labels": (K,)}`` and ``{"boxes", "labels"}``; labels are class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Boxes = dict[str, np.ndarray]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


@dataclass(frozen=True, kw_only=True)
class CocoResult:
    map50: float
    map50_95: float
    per_class_ap50: dict[int, float]  # classes with ground truth only
    per_class_ap: dict[int, float]  # AP at IoU 0.50:0.95
    precision_curve: np.ndarray  # (classes, 101): interpolated precision at IoU 0.5; -1 = no truth


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(ious: np.ndarray, threshold: float) -> np.ndarray:
    """For detections (rows, in score order): the index of the truth box each matches, or -1."""
    matched = np.full(ious.shape[0], -1)
    taken = np.zeros(ious.shape[1], dtype=bool)
    for d in range(ious.shape[0]):
        best, best_iou = -1, min(threshold, 1 - 1e-10)
        for g in range(ious.shape[1]):
            if taken[g] or ious[d, g] < best_iou:
                continue
            best, best_iou = g, ious[d, g]
        if best >= 0:
            matched[d], taken[best] = best, True
    return matched


def _class_matches(pred: Boxes, truth: Boxes, cls: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One image, one class: detection scores (score order, top 100), their matches per IoU
    threshold (T, K) as booleans, and the number of truth boxes."""
    keep = pred["labels"] == cls
    scores = np.asarray(pred["scores"])[keep]
    order = np.argsort(-scores, kind="mergesort")[:MAX_DETECTIONS]
    boxes = np.asarray(pred["boxes"], dtype=np.float64)[keep][order]
    gt = np.asarray(truth["boxes"], dtype=np.float64)[np.asarray(truth["labels"]) == cls]
    ious = box_iou(boxes, gt)
    hits = (
        np.stack([match(ious, t) >= 0 for t in IOU_THRESHOLDS])
        if len(boxes)
        else (np.zeros((len(IOU_THRESHOLDS), 0), dtype=bool))
    )
    return scores[order], hits, len(gt)


def _precision_at_recalls(hits: np.ndarray, truth_count: int) -> np.ndarray:
    """COCO's accumulate for one class and IoU threshold: precision at the 101 recall points."""
    q = np.zeros(len(RECALL_POINTS))
    if not len(hits):
        return q
    tp = np.cumsum(hits).astype(np.float64)
    fp = np.cumsum(~hits).astype(np.float64)
    recall = tp / truth_count
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    valid = idx < len(precision)
    q[valid] = precision[idx[valid]]
    return q


def coco_map(predictions: Sequence[Boxes], truth: Sequence[Boxes], num_classes: int) -> CocoResult:
    """mAP over the classes that have ground truth (as pycocotools averages)."""
    curves = np.full((len(IOU_THRESHOLDS), num_classes, len(RECALL_POINTS)), -1.0)
    for cls in range(num_classes):
        scores, hits, count = [], [], 0
        for pred, gt in zip(predictions, truth, strict=True):
            s, h, n = _class_matches(pred, gt, cls)
            scores.append(s)
            hits.append(h)
            count += n
        if count == 0:
            continue
        all_scores = np.concatenate(scores)
        order = np.argsort(-all_scores, kind="mergesort")
        all_hits = np.concatenate(hits, axis=1)[:, order]
        for t in range(len(IOU_THRESHOLDS)):
            curves[t, cls] = _precision_at_recalls(all_hits[t], count)
    present = [c for c in range(num_classes) if curves[0, c, 0] > -1]
    if not present:
        return CocoResult(
            map50=0.0, map50_95=0.0, per_class_ap50={}, per_class_ap={}, precision_curve=curves[0]
        )
    return CocoResult(
        map50=float(curves[0, present].mean()),
        map50_95=float(curves[:, present].mean()),
        per_class_ap50={c: float(curves[0, c].mean()) for c in present},
        per_class_ap={c: float(curves[:, c].mean()) for c in present},
        precision_curve=curves[0],
    )


@dataclass(frozen=True, kw_only=True)
class Outcomes:
    """Every detection at or above a score floor: its score, class, and whether it matched a
    truth box of its class at IoU 0.5 (what a calibrated score should predict)."""

    scores: np.ndarray
    labels: np.ndarray
    correct: np.ndarray
    truth_counts: np.ndarray  # per class, truth boxes in the images


def outcomes(
    predictions: Sequence[Boxes], truth: Sequence[Boxes], num_classes: int, floor: float = 0.0
) -> Outcomes:
    scores, labels, correct = [], [], []
    counts = np.zeros(num_classes, dtype=np.int64)
    for pred, gt in zip(predictions, truth, strict=True):
        for cls in range(num_classes):
            s, hits, n = _class_matches(pred, gt, cls)
            counts[cls] += n
            keep = s >= floor
            scores.append(s[keep])
            labels.append(np.full(int(keep.sum()), cls))
            correct.append(hits[0][keep] if hits.shape[1] else np.zeros(0, dtype=bool))
    return Outcomes(
        scores=np.concatenate(scores).astype(np.float64),
        labels=np.concatenate(labels).astype(np.int64),
        correct=np.concatenate(correct).astype(bool),
        truth_counts=counts,
    )


def operating_point(result: Outcomes, threshold: float, cls: int | None = None) -> dict[str, float]:
    """Precision, recall and F1 of the detections scoring at least ``threshold`` (IoU 0.5)."""
    keep = result.scores >= threshold
    truth = int(result.truth_counts.sum())
    if cls is not None:
        keep &= result.labels == cls
        truth = int(result.truth_counts[cls])
    tp = int(result.correct[keep].sum())
    fp = int(keep.sum()) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / truth if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": truth - tp,
    }


def confusion_matrix(
    predictions: Sequence[Boxes], truth: Sequence[Boxes], num_classes: int, threshold: float
) -> np.ndarray:
    """(classes + 1) x (classes + 1), rows the truth and columns the prediction; the last row
    and column are background (a missed box, a detection of nothing). Boxes pair greedily by
    IoU (at least 0.5) whatever their classes, so a wrong class shows off the diagonal."""
    bg = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for pred, gt in zip(predictions, truth, strict=True):
        keep = np.asarray(pred["scores"]) >= threshold
        p_boxes, p_labels = np.asarray(pred["boxes"])[keep], np.asarray(pred["labels"])[keep]
        g_labels = np.asarray(gt["labels"])
        ious = box_iou(np.asarray(gt["boxes"], dtype=np.float64), p_boxes.astype(np.float64))
        used_g, used_p = set(), set()
        for flat in np.argsort(-ious, axis=None, kind="stable"):
            g, p = np.unravel_index(flat, ious.shape)
            if ious[g, p] < 0.5:
                break
            if g in used_g or p in used_p:
                continue
            used_g.add(g)
            used_p.add(p)
            matrix[int(g_labels[g]), int(p_labels[p])] += 1
        for g in set(range(len(g_labels))) - used_g:
            matrix[int(g_labels[g]), bg] += 1
        for p in set(range(len(p_labels))) - used_p:
            matrix[bg, int(p_labels[p])] += 1
    return matrix
