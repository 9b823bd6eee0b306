"""The review set: the images where the model and the label disagree most, plus a random
sample of those the model was least sure of, as a CSV (and JSON) a person works through.

- detectors: disagreement = the scores of the detections at or above the threshold that match
  no labelled box of their class (IoU 0.5) plus one per labelled box no such detection found;
  "unsure" = a detection scored within ``margin`` of the threshold;
- image heads: disagreement = |output - label| (probability against 0/1, or rating against
  rating); "unsure" = an output within ``margin`` of the decision threshold.

Each row names the field a correction sets (``annotations``, ``is_compliant`` or
``label_value``), the current label and the prediction, with an empty ``corrected_label``
column: fill it in, then ``modelyard review apply`` writes the corrections into a new
version of the dataset.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ConfigError
from modelyard.evaluation.detection import box_iou, match
from modelyard.evaluation.review_file import COLUMNS, write
from modelyard.evaluation.run import predict
from modelyard.export import samples, source
from modelyard.export.runtime import torch_runner
from modelyard.export.samples import SamplePaths
from modelyard.export.source import ExportModel

__all__ = ["COLUMNS", "REASONS", "ReviewParams", "build", "pick", "write"]

REASONS = ("disagreement", "unsure")


@dataclass(frozen=True, kw_only=True)
class ReviewParams:
    top: int = 20  # the largest disagreements
    unsure: int = 10  # a random sample of the images with a score near the threshold
    margin: float = 0.1
    threshold: float = 0.5  # detectors' score / classifiers' probability (regressors: rating)
    splits: tuple[str, ...] = ("test", "validation")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top < 0 or self.unsure < 0:
            raise ConfigError("review: --top and --unsure must be at least 0")
        if not self.splits:
            raise ConfigError("review: name at least one split")


def build(model_dir: Path, paths: SamplePaths, params: ReviewParams) -> list[dict[str, Any]]:
    model = source.load(model_dir)
    runner = torch_runner(model.network)
    candidates = []
    for split in params.splits:
        data = samples.load(model, paths, split)
        rows = _manifest(paths.snapshot, split)
        predicted = predict(model, runner, data, batch=8)
        for i, sample_id in enumerate(data.sample_ids):
            row = rows[sample_id]
            found = _judge(model, params, predicted, data.targets, i)
            candidates.append({
                "sample_id": sample_id, "image_path": row["image_path"], "split": split,
                "field": _field(model), "label": _label(model, row), **found,
            })  # fmt: skip
    return pick(candidates, params)


def pick(candidates: list[dict[str, Any]], params: ReviewParams) -> list[dict[str, Any]]:
    """The ``top`` largest disagreements, then ``unsure`` of the rest drawn at random."""
    ranked = sorted(candidates, key=lambda c: (-c["disagreement"], c["image_path"]))
    chosen = [c | {"reason": "disagreement", "score": round(c["disagreement"], 4)}
              for c in ranked[: params.top] if c["disagreement"] > 0]  # fmt: skip
    taken = {c["sample_id"] for c in chosen}
    near = [c for c in candidates if c["closeness"] is not None and c["sample_id"] not in taken]
    rng = np.random.default_rng(params.seed)
    drawn = rng.permutation(len(near))[: params.unsure]
    chosen += [near[i] | {"reason": "unsure", "score": round(near[i]["closeness"], 4)}
               for i in sorted(drawn)]  # fmt: skip
    return chosen


def _manifest(snapshot: Path, split: str) -> dict[str, dict[str, str]]:
    with (snapshot / f"manifest_{split}.csv").open(newline="", encoding="utf-8") as handle:
        return {row["sample_id"]: row for row in csv.DictReader(handle)}


def _field(model: ExportModel) -> str:
    if model.task == "detect":
        return "annotations"
    return "is_compliant" if model.target == "is_compliant" else "label_value"


def _label(model: ExportModel, row: dict[str, str]) -> Any:
    if model.task == "detect":
        return json.loads(row["objects"] or "[]")
    if model.target == "is_compliant":
        return {"true": True, "false": False}.get(row["is_compliant"])
    return float(row["label_value"]) if row["label_value"] else None


def _judge(
    model: ExportModel, params: ReviewParams, predicted: Any, targets: list[Any], i: int
) -> dict[str, Any]:
    if model.task != "detect":
        value = float(predicted[i])
        threshold = model.good_threshold if model.task == "regress" else params.threshold
        off = abs(value - float(targets[i]))
        gap = abs(value - threshold)
        return {"disagreement": off, "closeness": gap if gap <= params.margin else None,
                "prediction": round(value, 4)}  # fmt: skip
    return _detections(model, params, predicted[i], targets[i])


def _detections(
    model: ExportModel, params: ReviewParams, pred: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
) -> dict[str, Any]:  # fmt: skip
    keep = pred["scores"] >= params.threshold
    boxes, scores, labels = pred["boxes"][keep], pred["scores"][keep], pred["labels"][keep]
    matched_pred = np.zeros(len(scores), dtype=bool)
    matched_truth = np.zeros(len(truth["labels"]), dtype=bool)
    for cls in np.unique(np.concatenate([labels, truth["labels"]])).astype(int):
        p_idx = np.flatnonzero(labels == cls)
        p_idx = p_idx[np.argsort(-scores[p_idx], kind="mergesort")]
        t_idx = np.flatnonzero(truth["labels"] == cls)
        ious = box_iou(boxes[p_idx].astype(np.float64), truth["boxes"][t_idx].astype(np.float64))
        partners = match(ious, 0.5)  # as mAP pairs them: by score, the best free IoU
        matched_pred[p_idx[partners >= 0]] = True
        matched_truth[t_idx[partners[partners >= 0]]] = True
    near = np.abs(pred["scores"] - params.threshold)
    near = near[near <= params.margin]
    extra = float(scores[~matched_pred].sum())
    return {
        "disagreement": extra + float((~matched_truth).sum()),
        "closeness": float(near.min()) if len(near) else None,
        "prediction": [_object(model, b, s, c) for b, s, c in zip(boxes, scores, labels,
                                                                   strict=True)],
        "missed": int((~matched_truth).sum()),
        "unmatched_detections": int((~matched_pred).sum()),
    }  # fmt: skip


def _object(model: ExportModel, box: np.ndarray, score: float, label: int) -> dict[str, Any]:
    x1, y1, x2, y2 = (round(float(v), 1) for v in box)
    return {"class": model.classes[int(label)], "bbox": [x1, y1, round(x2 - x1, 1),
                                                          round(y2 - y1, 1)],
            "score": round(float(score), 3)}  # fmt: skip
