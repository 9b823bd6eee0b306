"""The metrics of one model run on one set of images, per task, as plain JSON-ready dicts.

- detect: mAP50 and mAP50-95 (COCO protocol, ``detection``), per-class AP, precision /
  recall / F1 at the operating threshold (IoU 0.5), the precision-recall curve per class and
  a confusion matrix with a background row and column;
- classify (a probability per image, labels 0/1): accuracy, precision, recall, F1 at the
  threshold, ROC AUC, the precision-recall curve and a 2 x 2 confusion matrix;
- regress (a 0-5 rating): MAE, RMSE, PLCC, SROCC, and calibration by 0-5 bucket (the mean
  prediction of the images whose label rounds to each whole rating).

A metric that cannot be computed on the images given (AUC with one class present, a
correlation of constants) is ``None``, never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.evaluation import detection
from modelyard.evaluation.detection import Boxes

TASKS = ("detect", "classify", "regress")
HEADLINE = {"detect": "map50", "classify": "accuracy", "regress": "mae"}
# the scalar figures a report shows, in the order it shows them (each task has some of them)
REPORTED = ("map50", "map50_95", "accuracy", "auc", "precision", "recall", "f1", "mae", "rmse",
            "plcc", "srocc", "ece_before", "ece_after")  # fmt: skip
# metrics where smaller is better (a gate's bound is then a maximum)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "ece", "ece_before", "ece_after"})


def detect(
    predictions: Sequence[Boxes],
    truth: Sequence[Boxes],
    classes: Sequence[str],
    threshold: float,
    *,
    curves: bool = True,
) -> dict[str, Any]:
    coco = detection.coco_map(predictions, truth, len(classes))
    found = detection.outcomes(predictions, truth, len(classes))
    point = detection.operating_point(found, threshold)
    per_class = {
        name: {
            "ap50": coco.per_class_ap50.get(i),
            "ap50_95": coco.per_class_ap.get(i),
            "truth_boxes": int(found.truth_counts[i]),
            **_rounded(detection.operating_point(found, threshold, i)),
        }
        for i, name in enumerate(classes)
    }
    result: dict[str, Any] = {
        "samples": len(truth),
        "map50": coco.map50,
        "map50_95": coco.map50_95,
        "precision": point["precision"],
        "recall": point["recall"],
        "f1": point["f1"],
        "threshold": threshold,
        "per_class": per_class,
    }
    if curves:
        result["pr_curve"] = {
            "recall": detection.RECALL_POINTS.round(2).tolist(),
            "precision": {
                name: coco.precision_curve[i].round(4).tolist()
                for i, name in enumerate(classes)
                if coco.precision_curve[i, 0] > -1
            },
        }
        matrix = detection.confusion_matrix(predictions, truth, len(classes), threshold)
        result["confusion_matrix"] = {
            "labels": [*classes, "background"],
            "counts": matrix.tolist(),
        }
    return result


def classify(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float, *, curves: bool = True
) -> dict[str, Any]:
    from sklearn import metrics as sk

    y = np.asarray(labels) >= 0.5
    p = np.asarray(probabilities, dtype=np.float64)
    predicted = p >= threshold
    tp = int((predicted & y).sum())
    fp = int((predicted & ~y).sum())
    fn = int((~predicted & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both = len(np.unique(y)) == 2
    result: dict[str, Any] = {
        "samples": len(y),
        "accuracy": float((predicted == y).mean()) if len(y) else None,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auc": float(sk.roc_auc_score(y, p)) if both else None,
        "threshold": threshold,
    }
    if curves and both:
        prec, rec, _ = sk.precision_recall_curve(y, p)
        result["pr_curve"] = {"recall": rec.round(4).tolist(), "precision": prec.round(4).tolist()}
        result["confusion_matrix"] = {
            "labels": ["negative", "positive"],
            "counts": sk.confusion_matrix(y, predicted, labels=[False, True]).tolist(),
        }
    return result


def regress(predictions: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from scipy import stats

    pred = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    error = pred - y
    varied = len(y) > 2 and np.ptp(y) > 0 and np.ptp(pred) > 0
    return {
        "samples": len(y),
        "mae": float(np.abs(error).mean()) if len(y) else None,
        "rmse": float(math.sqrt((error**2).mean())) if len(y) else None,
        "plcc": float(stats.pearsonr(pred, y).statistic) if varied else None,
        "srocc": float(stats.spearmanr(pred, y).statistic) if varied else None,
        "buckets": buckets(pred, y),
    }


def buckets(pred: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """Per whole rating 0-5 (the label rounded): count, mean label, mean prediction, bias."""
    rounded = np.clip(np.rint(y), 0, 5).astype(int)
    rows = []
    for rating in range(6):
        mask = rounded == rating
        n = int(mask.sum())
        rows.append(
            {
                "bucket": rating,
                "count": n,
                "mean_label": float(y[mask].mean()) if n else None,
                "mean_prediction": float(pred[mask].mean()) if n else None,
                "bias": float((pred[mask] - y[mask]).mean()) if n else None,
            }
        )
    return rows


def headline(task: str, result: dict[str, Any]) -> float | None:
    value = result.get(HEADLINE[task])
    return None if value is None else float(value)


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}
