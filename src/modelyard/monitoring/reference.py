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
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modelyard.errors import EvaluationError
from modelyard.evaluation.calibration import ScoreCalibration
from modelyard.export import decode, onnx
from modelyard.export.manifest import sha256_path

SCHEMA_VERSION = 1
MIN_SCORE = 0.05  # detections below it are the decoder's padding, not predictions
BINS: dict[str, tuple[float, float, int]] = {  # name -> (low, high, count)
    "score": (0.0, 1.0, 20),
    "confidence": (0.0, 1.0, 20),
    "detections_per_image": (0.0, 100.0, 20),  # the decoder keeps at most 100
    "brightness": (0.0, 256.0, 16),
    "contrast": (0.0, 128.0, 16),
    "blur": (0.0, 5.0, 20),
}
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)


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


def image_qualities(image: Image.Image) -> tuple[float, float, float]:
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


def capture(
    bundle: Path, images: Sequence[ReferenceImage], *, threshold: float = 0.5, threads: int = 1
) -> ReferenceStats:
    """The reference statistics of the bundle in folder ``bundle`` (its ONNX artifact,
    ``onnx/manifest.json``, ``calibration.json``) over ``images``."""
    if not images:
        raise EvaluationError("no test-split images to capture reference statistics on")
    manifest_path = bundle / "onnx" / "manifest.json"
    if not manifest_path.is_file():
        raise EvaluationError(
            f"{bundle}: no onnx/manifest.json; reference statistics are measured with the ONNX "
            "artifact, so export it (params export.formats) and register again"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    artifact = next(a for a in manifest["artifacts"] if a["batch"] != "dynamic")
    model_path = bundle / "onnx" / artifact["file"]
    runner = onnx.open_runtime(model_path, manifest["outputs"], threads)
    fitted = _calibration(bundle / "calibration.json")
    classes = list(manifest["classes"])
    scores: list[float] = []
    top: list[float] = []
    counts: list[float] = []
    predicted: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    qualities = []
    for item in images:
        qualities.append(image_qualities(item.image))
        labelled.update(item.labels)
        pixels = _pixels(item.image, manifest["input"])
        outputs = runner(pixels[None])
        if manifest["task"] == "detect":
            found = decode.detections(
                decode.family(manifest["architecture"]),
                outputs,
                np.array([[item.image.height, item.image.width]], dtype=np.float32),
                manifest["input"]["shape"][-1],
            )[0]
            raw, labels = found["scores"], found["labels"]
            keep = raw >= MIN_SCORE
            raw, labels = raw[keep], labels[keep]
            sure = fitted.apply(raw, labels, classes) if fitted and len(raw) else raw
            scores.extend(float(s) for s in sure)
            top.append(float(sure.max()) if len(sure) else 0.0)
            counts.append(float(len(sure)))
            predicted.update(
                classes[int(c)] for c, s in zip(labels, sure, strict=True) if s >= threshold
            )
        else:
            value = float(decode.values(outputs)[0])
            sure_value = (
                float(fitted.apply(np.array([value]), np.array([0]), classes)[0])
                if fitted and manifest["task"] == "classify"
                else value
            )
            scores.append(sure_value)
            top.append(max(sure_value, 1 - sure_value) if manifest["task"] == "classify" else 1.0)
            if manifest["task"] == "classify":
                predicted["positive" if sure_value >= threshold else "negative"] += 1
    brightness, contrast, blur = (list(q) for q in zip(*qualities, strict=True))
    histograms = {
        "score": histogram("score", scores) if manifest["task"] != "regress" else None,
        "confidence": histogram("confidence", top),
        "brightness": histogram("brightness", brightness),
        "contrast": histogram("contrast", contrast),
        "blur": histogram("blur", blur),
    }
    if manifest["task"] == "detect":
        histograms["detections_per_image"] = histogram("detections_per_image", counts)
    if manifest["task"] == "regress":
        histograms["value"] = {
            "values_mean": float(np.mean(scores)),
            "values_std": float(np.std(scores)),
        }
    stats = {
        "schema_version": SCHEMA_VERSION,
        "task": manifest["task"],
        "model": {"file": f"onnx/{artifact['file']}", "sha256": sha256_path(model_path)},
        "calibrated": fitted is not None,
        "threshold": threshold,
        "min_score": MIN_SCORE,
        "histograms": {k: v for k, v in histograms.items() if v is not None},
        "class_mix": {"predicted": _shares(predicted), "labelled": _shares(labelled)},
        "sample_ids_sha256": _ids_hash([i.sample_id for i in images]),
    }
    return ReferenceStats(stats=stats, sample_count=len(images))


def _pixels(image: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """The image as the manifest's input spec says a device feeds it (one item, no batch)."""
    shape = spec["shape"]
    layout = spec.get("layout", "NCHW")
    height, width = (shape[1], shape[2]) if layout == "NHWC" else (shape[2], shape[3])
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    x: np.ndarray = (np.asarray(resized, dtype=np.float32) * np.float32(spec["scale"]) - mean) / std
    return x if layout == "NHWC" else x.transpose(2, 0, 1).copy()


def _calibration(path: Path) -> ScoreCalibration | None:
    if not path.is_file():
        return None
    return ScoreCalibration.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _shares(counter: Counter[str]) -> dict[str, Any]:
    total = sum(counter.values())
    return {
        "total": total,
        "share": {k: round(v / total, 6) for k, v in sorted(counter.items())} if total else {},
    }


def _ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
