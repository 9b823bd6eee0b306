"""Does an exported artifact behave like the PyTorch model it came from?

Two comparisons, each with bounds per precision (params.yaml ``export.parity``):

- **raw tensors** (``tensor_parity``): every output tensor on every test image, as the
  largest absolute difference over its channel's scale (the channel's largest absolute
  value on the test split). A true fp32 export holds this near 1e-6, where a convolution
  whose weights were changed by 1 % after export moves it far further; the decoded
  comparison below lets such a change through. A DETR's queries are a set whose order two
  correct runtimes may disagree on, so an RT-DETR artifact's queries are first paired with
  PyTorch's (a least-cost assignment on the queries' logits and boxes) and compared pair by
  pair.
- **decoded outputs**, what a device acts on:

- detectors: on a sample of test images, every detection at or above ``score_threshold`` on
  either side must have a partner on the other (same class, IoU >= ``match_iou``, partner
  score at least the threshold less the score tolerance); partners must overlap by
  ``box_iou`` and differ in score by at most ``score``. Over the whole test split, mAP50
  may move by at most ``map50``.
- image heads: every test image's output may differ by at most ``output``; the test
  metric (accuracy and AUC, or MAE) by at most ``metric``.

A failure names the images and by how much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.export.config import ParityParams, Tolerance
from modelyard.export.decode import Detections

MAX_FINDINGS = 20  # per artifact, in the report; the count is always complete


@dataclass(frozen=True, kw_only=True)
class ParityResult:
    status: str  # passed | failed | skipped
    reason: str = ""
    measures: dict[str, float] = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    finding_count: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "measures": self.measures,
            "finding_count": self.finding_count,
            "findings": list(self.findings),
        }


def skipped(reason: str) -> ParityResult:
    return ParityResult(status="skipped", reason=reason)


def detection_parity(
    reference: Sequence[Detections],
    artifact: Sequence[Detections],
    *,
    names: Sequence[str],
    truth: Sequence[dict[str, np.ndarray]],
    sample: Sequence[int],
    params: ParityParams,
    tol: Tolerance,
) -> ParityResult:
    findings: list[str] = []
    worst_iou, worst_score, pairs = 1.0, 0.0, 0
    for i in sample:
        pair_ious, pair_scores, problems = _match_image(reference[i], artifact[i], params, tol)
        pairs += len(pair_ious)
        worst_iou = min([worst_iou, *pair_ious])
        worst_score = max([worst_score, *pair_scores])
        findings += [f"{names[i]}: {p}" for p in problems]
    map_ref, map_art = map50(reference, truth), map50(artifact, truth)
    delta = map_art - map_ref
    if abs(delta) > tol.map50:
        findings.append(
            f"test split: mAP50 {map_art:.4f} vs PyTorch {map_ref:.4f} "
            f"(delta {delta:+.4f}, tolerance {tol.map50})"
        )
    measures = {
        "map50_pytorch": map_ref,
        "map50_artifact": map_art,
        "map50_delta": delta,
        "matched_detections": float(pairs),
        "worst_box_iou": worst_iou,
        "worst_score_delta": worst_score,
        "images_matched": float(len(sample)),
        "images_scored": float(len(truth)),
    }
    return _result(findings, measures)


def value_parity(
    reference: np.ndarray,
    artifact: np.ndarray,
    *,
    names: Sequence[str],
    truth: Sequence[float],
    task: str,
    tol: Tolerance,
) -> ParityResult:
    diff = np.abs(artifact - reference)
    findings = [
        f"{names[i]}: output {artifact[i]:.4f} vs PyTorch {reference[i]:.4f} "
        f"(off by {diff[i]:.4f}, tolerance {tol.output})"
        for i in np.argsort(-diff)
        if diff[i] > tol.output
    ]
    measures: dict[str, float] = {"max_output_delta": float(diff.max(initial=0.0))}
    labels = np.asarray(truth, dtype=np.float64)
    for metric, score in _metrics(task).items():
        ref, art = score(reference, labels), score(artifact, labels)
        measures |= {f"{metric}_pytorch": ref, f"{metric}_artifact": art}
        measures[f"{metric}_delta"] = art - ref
        if abs(art - ref) > tol.metric:
            findings.append(
                f"test split: {metric} {art:.4f} vs PyTorch {ref:.4f} "
                f"(delta {art - ref:+.4f}, tolerance {tol.metric})"
            )
    return _result(findings, measures)


def tensor_parity(
    reference: Sequence[np.ndarray],
    artifact: Sequence[np.ndarray],
    *,
    tensors: Sequence[str],
    names: Sequence[str],
    bound: float,
    query_set: bool = False,
    channel_axis: int = -1,
    rows: np.ndarray | None = None,
) -> ParityResult:
    """Each output tensor (``tensors`` names them, in order) of the artifact against
    PyTorch's, image by image (``names``): its largest difference over its channel's scale
    may be at most ``bound``. A channel (along ``channel_axis``: a box coordinate, a class
    score) is scaled by its own largest absolute value on the test split, so that pixels and
    probabilities in one tensor are each held to the bound; a channel that stays near zero is
    scaled by ``SCALE_FLOOR`` of the tensor's largest value instead. ``query_set``: axis 1 is
    a set of queries (RT-DETR), paired before they are compared; ``rows`` (images x
    queries, true where it counts) keeps the comparison to the queries PyTorch scores high
    enough to matter."""
    ref = [np.asarray(t, np.float64) for t in reference]
    art = [np.asarray(t, np.float64) for t in artifact]
    scales = [_channel_scales(t, channel_axis) for t in ref]
    if query_set:
        art = _paired_queries(ref, art, scales)
    findings: list[tuple[float, str]] = []
    measures: dict[str, float] = {}
    for name, r, a, scale in zip(tensors, ref, art, scales, strict=True):
        if r.shape != a.shape:
            findings.append((np.inf, f"tensor {name}: shape {a.shape}, PyTorch's {r.shape}"))
            continue
        relative = np.abs(a - r) / scale
        if rows is not None:
            relative = np.where(rows.reshape(*rows.shape, *(1,) * (r.ndim - 2)), relative, 0.0)
        worst = relative.reshape(len(r), -1).max(axis=1, initial=0.0)
        measures[f"tensor_{name}_max_rel_delta"] = float(worst.max(initial=0.0))
        findings += [
            (float(worst[i]), f"{names[i]}: tensor {name} off by {worst[i]:.1e} of its "
             f"channel's scale, bound {bound:.0e}")
            for i in np.flatnonzero(~(worst <= bound))
        ]  # fmt: skip
    ordered = [text for _, text in sorted(findings, key=lambda f: -f[0])]
    return _result(ordered, measures)


SCALE_FLOOR = 1e-3  # of a tensor's largest |value|: the least scale a channel is given


def _channel_scales(tensor: np.ndarray, axis: int) -> np.ndarray:
    """Each channel's largest |value| over every other axis, shaped to broadcast."""
    if tensor.ndim < 2:
        return np.full((1,) * tensor.ndim, max(float(np.abs(tensor).max(initial=0.0)), 1e-12))
    axis = axis % tensor.ndim
    others = tuple(k for k in range(tensor.ndim) if k != axis)
    per_channel = np.abs(tensor).max(axis=others, keepdims=True)
    floor = max(float(per_channel.max(initial=0.0)) * SCALE_FLOOR, 1e-12)
    scaled: np.ndarray = np.maximum(per_channel, floor)
    return scaled


def combined(decoded: ParityResult, tensors: ParityResult) -> ParityResult:
    """Both comparisons as one result: every measure, and the findings of each (the decoded
    ones first, what a device would see; half the listed findings kept for each when both
    fail)."""
    measures = {**decoded.measures, **tensors.measures}
    count = decoded.finding_count + tensors.finding_count
    if not count:
        return ParityResult(status="passed", measures=measures)
    share = MAX_FINDINGS // 2 if decoded.findings and tensors.findings else MAX_FINDINGS
    findings = [*decoded.findings[:share], *tensors.findings[:share]]
    first = next(r for r in (decoded, tensors) if not r.passed)
    return ParityResult(
        status="failed",
        reason=f"{count} finding(s); first: {first.reason.split('; first: ', 1)[-1]}",
        measures=measures,
        findings=tuple(findings),
        finding_count=count,
    )


def _paired_queries(
    ref: list[np.ndarray], art: list[np.ndarray], scales: list[np.ndarray]
) -> list[np.ndarray]:
    """The artifact's queries (axis 1) reordered, image by image, to the PyTorch queries they
    are closest to (L1 over every tensor's row, each over its scale)."""
    from scipy.optimize import linear_sum_assignment

    if any(a.shape != r.shape or a.ndim < 3 for a, r in zip(art, ref, strict=True)):
        return art
    paired = [a.copy() for a in art]
    for i in range(len(ref[0])):
        rows_r = np.concatenate([r[i] / s[0] for r, s in zip(ref, scales, strict=True)], axis=1)
        rows_a = np.concatenate([a[i] / s[0] for a, s in zip(art, scales, strict=True)], axis=1)
        cost = np.abs(rows_r[:, None, :] - rows_a[None, :, :]).sum(axis=2)
        _, columns = linear_sum_assignment(cost)
        for k, a in enumerate(art):
            paired[k][i] = a[i][columns]
    return paired


def _result(findings: list[str], measures: dict[str, float]) -> ParityResult:
    clean = {k: float(f"{float(v):.6g}") for k, v in measures.items()}
    if not findings:
        return ParityResult(status="passed", measures=clean)
    return ParityResult(
        status="failed",
        reason=f"{len(findings)} finding(s); first: {findings[0]}",
        measures=clean,
        findings=tuple(findings[:MAX_FINDINGS]),
        finding_count=len(findings),
    )


def _match_image(
    ref: Detections, art: Detections, params: ParityParams, tol: Tolerance
) -> tuple[list[float], list[float], list[str]]:
    """Pairs of (reference, artifact) detections above the threshold; what has no partner."""
    floor = params.score_threshold - tol.score
    ious, score_deltas, problems = [], [], []
    taken: set[int] = set()
    for r in np.argsort(-ref["scores"]):
        if ref["scores"][r] < params.score_threshold:
            break
        a = _partner(ref, int(r), art, floor, params.match_iou, taken)
        if a is None:
            problems.append(f"{_describe(ref, int(r))} has no partner in the artifact")
            continue
        taken.add(a)
        iou = float(_iou(ref["boxes"][r], art["boxes"][a]))
        delta = abs(float(ref["scores"][r] - art["scores"][a]))
        ious.append(iou)
        score_deltas.append(delta)
        if iou < tol.box_iou or delta > tol.score:
            problems.append(
                f"{_describe(ref, int(r))}: artifact box IoU {iou:.3f} (tolerance {tol.box_iou}), "
                f"score off by {delta:.3f} (tolerance {tol.score})"
            )
    for a in np.argsort(-art["scores"]):
        if art["scores"][a] < params.score_threshold:
            break
        if int(a) not in taken and _partner(art, int(a), ref, floor, params.match_iou) is None:
            problems.append(f"artifact's {_describe(art, int(a))} has no partner in PyTorch's")
    return ious, score_deltas, problems


def _partner(
    src: Detections, i: int, other: Detections, floor: float, match_iou: float,
    taken: set[int] | None = None,
) -> int | None:  # fmt: skip
    """The best-overlapping detection of ``other`` with ``src[i]``'s class, or None."""
    candidates = (other["labels"] == src["labels"][i]) & (other["scores"] >= floor)
    if taken:
        candidates[list(taken)] = False
    if not candidates.any():
        return None
    ious = np.where(candidates, _iou(src["boxes"][i], other["boxes"]), -1.0)
    best = int(np.argmax(ious))
    return best if ious[best] >= match_iou else None


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[..., 0])
    y1 = np.maximum(box[1], boxes[..., 1])
    x2 = np.minimum(box[2], boxes[..., 2])
    y2 = np.minimum(box[3], boxes[..., 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    result: np.ndarray = inter / np.maximum(area + areas - inter, 1e-9)
    return result


def _describe(d: Detections, i: int) -> str:
    box = ", ".join(f"{v:.0f}" for v in d["boxes"][i])
    return f"class {int(d['labels'][i])} score {float(d['scores'][i]):.3f} at [{box}]"


def map50(predictions: Sequence[Detections], truth: Sequence[dict[str, np.ndarray]]) -> float:
    """COCO mAP at IoU 0.5 (torchmetrics, pycocotools backend: as training scores it)."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
    metric.update(
        [{k: torch.from_numpy(np.asarray(v)) for k, v in p.items()} for p in predictions],
        [{k: torch.from_numpy(np.asarray(v)) for k, v in t.items()} for t in truth],
    )
    return float(metric.compute()["map_50"])


def _metrics(task: str) -> dict[str, Any]:
    if task == "regress":
        return {"mae": lambda pred, y: float(np.abs(pred - y).mean())}
    return {"accuracy": _accuracy, "auc": _auc}


def _accuracy(prob: np.ndarray, y: np.ndarray) -> float:
    return float(((prob >= 0.5) == (y >= 0.5)).mean())


def _auc(prob: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, prob))
