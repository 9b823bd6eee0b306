"""Accuracy without labels, from calibrated scores (confidence-based performance estimation).

A calibrated score means what it says: of the detections scored 0.8, 80 % are right. So the
mean calibrated score of what a model decides is the precision it should have there, with
no label in sight:

* detectors: expected precision at the operating threshold = the mean calibrated score of
  the detections at or above it (the ``score`` histogram's bins from the threshold up);
* classifiers: expected accuracy = the mean of max(p, 1 - p) (the ``confidence`` histogram).

Telemetry carries bin counts, not scores, so each bin stands for its midpoint: at 20 bins
the estimate is within half a bin (0.025) of the mean of the scores themselves. The same
estimator is run on the promotion reference's bins, so the change from reference to window
is free of that rounding; the reference's measured figure (precision or accuracy on the test
split, from the gate's evaluation) is shown beside it. The estimate holds only while the
calibration does: under a shift that breaks calibration (new kinds of image) it is a guess,
which is why it sits next to the drift verdict rather than replacing labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

EPS = 1e-9


def mean_of_bins(
    counts: Sequence[float], edges: Sequence[float], low: float = 0.0
) -> tuple[float | None, int]:
    """(mean of bin midpoints weighted by counts over bins starting at or above ``low``,
    how many values that is)."""
    total = weighted = 0.0
    for i, count in enumerate(counts):
        if edges[i] >= low - EPS:
            total += count
            weighted += count * (edges[i] + edges[i + 1]) / 2
    return (weighted / total if total else None), int(total)


def estimate(
    task: str, reference: Mapping[str, Any], live: Mapping[str, Mapping[int, int]],
    gold: Mapping[str, Any] | None,
) -> dict[str, Any] | None:  # fmt: skip
    """This window's expected precision (detectors) or accuracy (classifiers) beside the
    reference's estimate and measured figure; None for tasks it does not apply to, or an
    uncalibrated bundle."""
    if not reference.get("calibrated") or task not in ("detect", "classify"):
        return None
    feature, metric = ("score", "precision") if task == "detect" else ("confidence", "accuracy")
    histogram = reference.get("histograms", {}).get(feature)
    if not histogram or "counts" not in histogram:
        return None
    edges, threshold = histogram["edges"], float(reference.get("threshold", 0.5))
    low = threshold if task == "detect" else 0.0
    counts = live.get(feature, {})
    observed = [counts.get(i, 0) for i in range(len(histogram["counts"]))]
    now, n = mean_of_bins(observed, edges, low)
    then, m = mean_of_bins(histogram["counts"], edges, low)
    measured = (gold or {}).get("pytorch", {}).get(metric)
    return {
        "metric": f"expected_{metric}",
        "threshold": threshold if task == "detect" else None,
        "window": _round(now),
        "window_n": n,
        "reference": _round(then),
        "reference_n": m,
        "change": _round(now - then) if now is not None and then is not None else None,
        "reference_measured": _round(measured),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
