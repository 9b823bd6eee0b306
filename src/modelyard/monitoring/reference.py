"""Reference statistics captured at promotion: the distributions a drift monitor compares
live traffic against, computed with the bundle's exported model (the ONNX artifact, fed as
its manifest tells a device to feed it) on the test split's images.

Every distribution is a histogram over fixed bin edges, so that live windows binned on a
device (same edges, ``BINS``) compare bin for bin:

* ``score``: every detection's calibrated confidence at or above ``MIN_SCORE`` (detectors),
  or the head's output (image heads);
* ``confidence``: each image's top calibrated confidence;
* ``detections_per_image`` (detectors);
* ``brightness``, ``contrast``, ``blur``: the image's mean luma, its standard deviation, and
  log10(1 + variance of the Laplacian) — low means blurred;
* ``class_mix``: the share of each class among predictions at the operating threshold, and
  among the labels.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modelyard.errors import EvaluationError
from modelyard.export.manifest import sha256_path
from modelyard.sdk.scorer import MIN_SCORE, Scorer

SCHEMA_VERSION = 1
BINS: dict[str, tuple[float, float, int]] = {  # name -> (low, high, count)
    "score": (0.0, 1.0, 20),
    "confidence": (0.0, 1.0, 20),
    "detections_per_image": (0.0, 100.0, 20),  # the decoder keeps at most 100
    "brightness": (0.0, 256.0, 16),
    "contrast": (0.0, 128.0, 16),
    "blur": (0.0, 5.0, 20),
    # photo-selection bundles (see monitoring.selection_reference)
    "box_centre_x": (0.0, 1.0, 20),
    "box_centre_y": (0.0, 1.0, 20),
    "box_width": (0.0, 1.0, 20),
    "box_height": (0.0, 1.0, 20),
    "burst_size": (0.0, 20.0, 20),
}


@dataclass(frozen=True, kw_only=True)
class ReferenceImage:
    sample_id: str
    image: Image.Image
    labels: tuple[str, ...] = field(default_factory=tuple)  # classes of its labelled objects


@dataclass(frozen=True, kw_only=True)
class ReferenceStats:
    stats: dict[str, Any]
    sample_count: int


def histogram(name: str, values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """``values`` over ``BINS[name]``; values beyond the edges fall in the end bins (their
    mean and standard deviation are of the values as they are)."""
    low, high, count = BINS[name]
    edges = np.linspace(low, high, count + 1)
    data = np.asarray(values, dtype=np.float64)  # mean and std of the values as they are
    counts, _ = np.histogram(np.clip(data, low, high), bins=edges)
    return {
        "edges": [round(float(e), 6) for e in edges],
        "counts": [int(c) for c in counts],
        "n": len(data),
        "mean": float(data.mean()) if len(data) else None,
        "std": float(data.std()) if len(data) else None,
    }


def capture(
    bundle: Path,
    images: Sequence[ReferenceImage],
    *,
    threshold: float | None = None,
    threads: int = 1,
) -> ReferenceStats:
    """The reference statistics of the bundle in folder ``bundle`` (its ONNX artifact,
    ``onnx/manifest.json``, ``calibration.json``) over ``images``, at ``threshold`` (by
    default the scorer's: 0.5, or a rating model's good threshold)."""
    if not images:
        raise EvaluationError("no test-split images to capture reference statistics on")
    manifest_path = bundle / "onnx" / "manifest.json"
    if not manifest_path.is_file():
        raise EvaluationError(
            f"{bundle}: no onnx/manifest.json; reference statistics are measured with the ONNX "
            "artifact, so export it (params export.formats) and register again"
        )
    scorer = Scorer.from_export(bundle, threshold=threshold, threads=threads)
    scores: list[float] = []
    top: list[float] = []
    counts: list[float] = []
    predicted: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    qualities = []
    for item in images:
        labelled.update(item.labels)
        result = scorer.score([item.image])[0]
        qualities.append((result.brightness, result.contrast, result.blur))
        scores.extend(result.scores if scorer.task != "regress" else [result.score])
        top.append(result.confidence)
        if result.detections is not None:
            counts.append(float(result.detections))
        predicted.update(result.predicted)
    brightness, contrast, blur = (list(q) for q in zip(*qualities, strict=True))
    histograms = {
        "score": histogram("score", scores) if scorer.task != "regress" else None,
        "confidence": histogram("confidence", top),
        "brightness": histogram("brightness", brightness),
        "contrast": histogram("contrast", contrast),
        "blur": histogram("blur", blur),
    }
    if scorer.task == "detect":
        histograms["detections_per_image"] = histogram("detections_per_image", counts)
    if scorer.task == "regress":
        histograms["value"] = {
            "values_mean": float(np.mean(scores)),
            "values_std": float(np.std(scores)),
        }
    stats = {
        "schema_version": SCHEMA_VERSION,
        "task": scorer.task,
        "model": {
            "file": f"onnx/{scorer.model_file.name}",
            "sha256": sha256_path(scorer.model_file),
        },
        "calibrated": scorer.calibration is not None,
        "threshold": scorer.threshold,
        "min_score": MIN_SCORE,
        "histograms": {k: v for k, v in histograms.items() if v is not None},
        "class_mix": {"predicted": _shares(predicted), "labelled": _shares(labelled)},
        "sample_ids_sha256": _ids_hash([i.sample_id for i in images]),
    }
    return ReferenceStats(stats=stats, sample_count=len(images))


def _shares(counter: Counter[str]) -> dict[str, Any]:
    total = sum(counter.values())
    return {
        "total": total,
        "share": {k: round(v / total, 6) for k, v in sorted(counter.items())} if total else {},
    }


def _ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
