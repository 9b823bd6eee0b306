"""Reference statistics of a photo-selection bundle, captured at promotion like a detector's:
the bundle's own ONNX (``onnx/manifest.json`` says how to feed it) run on the test split's
photos of the dataset it was trained on.

Both kinds carry the image histograms every bundle carries (``brightness``, ``contrast``,
``blur``, on the same edges, so a device bins its telemetry the same way) and the
agreement with the people's decisions on those photos. Beside them:

* the crop proposer (``propose-crop``): the proposed box's ``box_centre_x``,
  ``box_centre_y``, ``box_width`` and ``box_height`` (normalised), over every test photo — a
  device crops photos it was never shown a person's crop for — and the mean IoU against the
  person's crop where there is one;
* the ranker (``rank-burst``): each photo's ``score`` as the softmax of its burst's scores,
  each burst's ``confidence`` (the top photo's share) and ``burst_size``, over the test
  split's rankable bursts, and the selection accuracy there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modelyard.errors import EvaluationError, StateError
from modelyard.export.manifest import sha256_path
from modelyard.export.onnx import open_runtime
from modelyard.monitoring.reference import SCHEMA_VERSION, ReferenceStats, histogram
from modelyard.sdk.imaging import qualities
from modelyard.selection import crop, data, features, ranker
from modelyard.selection.data import Shot
from modelyard.selection.embeddings import open_rgb

CROP, RANK = "propose-crop", "rank-burst"
TASKS = (CROP, RANK)
BOX = ("box_centre_x", "box_centre_y", "box_width", "box_height")


def capture(
    folder: Path, shots: Sequence[Shot], read: Callable[[str], bytes], limit: int = 500
) -> ReferenceStats:
    """The reference statistics of the selection bundle in ``folder`` over the test split's
    ``shots`` (their images read by sha256), at most ``limit`` photos."""
    spec_path = folder / "onnx" / "manifest.json"
    if not spec_path.is_file():
        raise EvaluationError(f"{folder}: no onnx/manifest.json; register the model again")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    if spec["task"] not in TASKS:
        raise EvaluationError(f"{spec_path}: task '{spec['task']}' is not one of {TASKS}")
    if spec["task"] == RANK and spec["input"].get("kind") != "crafted":
        raise StateError(
            f"the ranker takes '{spec['input'].get('kind')}' inputs (the backbone's "
            "embeddings), which the bridge does not compute; its reference statistics are "
            "measured for a ranker on crafted features (params ranker.inputs: crafted)"
        )
    model = folder / "onnx" / spec["artifacts"][0]["file"]
    run = open_runtime(model, spec["outputs"], threads=1)
    test = [s for s in shots if s.split == "test"]
    if not test:
        raise StateError(
            "the dataset has no test-split photos to measure reference statistics on; split it "
            "(`modelyard dataset split`) before promoting"
        )
    if spec["task"] == CROP:
        body, n = _crop(spec, lambda x: run(x)[0], test[:limit], read)
    else:
        body, n = _rank(spec, lambda x: run(x)[0], test, read, limit)
    stats = {
        "schema_version": SCHEMA_VERSION,
        "task": spec["task"],
        "model": {"file": f"onnx/{model.name}", "sha256": sha256_path(model)},
        "calibrated": False,
        "threshold": None,
        **body,
        "class_mix": {
            "predicted": {"total": 0, "share": {}},
            "labelled": {"total": 0, "share": {}},
        },
    }
    return ReferenceStats(stats=stats, sample_count=n)


def _crop(
    spec: dict[str, Any],
    run: Callable[[np.ndarray], np.ndarray],
    shots: Sequence[Shot],
    read: Callable[[str], bytes],
) -> tuple[dict[str, Any], int]:
    images = [open_rgb(read(s.sha256)) for s in shots]
    boxes = run(crop.to_input(images, int(spec["input"]["shape"][2])))
    centre, side = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    columns = (centre[:, 0], centre[:, 1], side[:, 0], side[:, 1])
    cropped = [i for i, s in enumerate(shots) if s.crop]
    truth = np.asarray([shots[i].crop for i in cropped], np.float32).reshape(-1, 4)
    agreement = float(crop.iou(boxes[cropped], truth).mean()) if cropped else None
    return {
        "histograms": {
            **_image_histograms(images),
            **{name: histogram(name, col) for name, col in zip(BOX, columns, strict=True)},
        },
        "agreement": {"mean_iou": agreement, "cropped_photos": len(cropped)},
    }, len(images)


def _rank(
    spec: dict[str, Any],
    run: Callable[[np.ndarray], np.ndarray],
    shots: Sequence[Shot],
    read: Callable[[str], bytes],
    limit: int,
) -> tuple[dict[str, Any], int]:
    bursts, n = [], 0
    for group in data.groups(shots):
        if n + len(group) > limit:
            break
        bursts.append(group)
        n += len(group)
    images: list[Image.Image] = []
    shares, top, kept = [], [], []
    for group in bursts:
        opened = [open_rgb(read(s.sha256)) for s in group]
        images += opened
        x = np.stack([features.vector(i) for i in opened]).astype(np.float32)
        if spec["input"].get("stage"):
            x = np.concatenate([x, [[s.stage or 0] for s in group]], axis=1).astype(np.float32)
        score = run(x).astype(np.float64)
        share = np.exp(score - score.max())
        share /= share.sum()
        shares.append(share)
        top.append(float(share.max()))
        kept.append(next(i for i, s in enumerate(group) if s.kept))
    if not bursts:
        raise StateError("the test split has no rankable burst (two photos or more, one kept)")
    return {
        "histograms": {
            **_image_histograms(images),
            "score": histogram("score", np.concatenate(shares)),
            "confidence": histogram("confidence", top),
            "burst_size": histogram("burst_size", [len(g) for g in bursts]),
        },
        "agreement": {**ranker.ranking_metrics(shares, kept), "bursts": len(bursts)},
    }, n


def _image_histograms(images: Sequence[Image.Image]) -> dict[str, Any]:
    measured = np.asarray([qualities(i) for i in images], np.float64).reshape(-1, 3)
    return {
        name: histogram(name, measured[:, k])
        for k, name in enumerate(("brightness", "contrast", "blur"))
    }
