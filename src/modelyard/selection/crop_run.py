"""``modelyard crop train``: the crop proposer from a decisions dataset's cropped photos to a
gated ONNX and its metadata.

Steps: the dataset's decisions through the integrity gate (fail closed) and its
group-disjoint splits -> the photos a person cropped, read from the object store -> train on
the train split's crops -> mean IoU, boundary displacement error and centre distance on
validation and test, overall and by stage, beside the "whole image" and "centre crop of the
mean crop size" baselines -> the ``crop`` gate on the test split -> ONNX (the project's
exporter), run by onnxruntime on every test photo against PyTorch -> ``crop.onnx``,
``crop.pt`` and ``crop_metadata.json``. A failing gate is reported, loudly, and the exit
status says so.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modelyard.errors import GateError
from modelyard.export.manifest import sha256_path
from modelyard.selection import crop, outputs
from modelyard.selection.crop import CropParams
from modelyard.selection.data import Decisions, Shot
from modelyard.tracking import Tracker

log = logging.getLogger(__name__)

NAME = "crop"
SPLITS = ("train", "validation", "test")


def run(
    decisions: Decisions,
    read: Callable[[str], bytes],
    params: CropParams,
    gate: dict[str, float],
    out: Path,
    tracker: Tracker | None,
) -> outputs.Outcome:
    crops = {name: [s for s in decisions.split(name) if s.crop] for name in SPLITS}
    if not crops["train"]:
        raise GateError(
            f"dataset {decisions.dataset}: no cropped photo in the train split; the crop "
            "proposer learns from decisions with user_action 'crop'"
        )
    x = {name: _images(shots, read, params.image_size) for name, shots in crops.items()}
    boxes = {name: _boxes(shots) for name, shots in crops.items()}
    network = crop.train(x["train"], boxes["train"], params)
    results = {
        name: _evaluate(network, x[name], boxes[name], boxes["train"], crops[name])
        for name in ("validation", "test")
    }
    verdict, reasons = _judge(results["test"], len(crops["test"]), gate)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{NAME}.onnx"
    parity = _export(network, x["test"], onnx_path, gate, params.image_size)
    if not parity["max_abs_diff"] <= gate["parity_box"]:
        verdict = "FAIL"
        reasons.append(
            f"ONNX parity: box off by {parity['max_abs_diff']:.2e} > {gate['parity_box']}"
        )
    torch.save(network.state_dict(), out / f"{NAME}.pt")
    run_id = outputs.track(
        tracker,
        NAME,
        params,
        {
            k: {who: v[who] for who in ("proposer", "whole_image", "centre_crop")}
            for k, v in results.items()
        },
        (verdict, reasons),
        decisions,
        [onnx_path, out / f"{NAME}.pt"],
    )
    metadata = {
        "model": NAME,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": decisions.dataset,
        "dataset_id": decisions.dataset_id,
        "data_hash": decisions.data_hash,
        "sizes": decisions.sizes(),
        "crops": {name: len(shots) for name, shots in crops.items()},
        "params": asdict(params),
        "metrics": {k: v["proposer"] for k, v in results.items()},
        "by_stage": {k: v["by_stage"] for k, v in results.items()},
        "baselines": {
            k: {"whole_image": v["whole_image"], "centre_crop": v["centre_crop"]}
            for k, v in results.items()
        },
        "gate": {"status": verdict, "reasons": reasons, "thresholds": gate},
        "onnx": {
            "file": onnx_path.name,
            "sha256": sha256_path(onnx_path),
            "input": crop.INPUT,
            "output": crop.OUTPUT,
            "call": f"N photos x 3 x {params.image_size} x {params.image_size}, RGB in [0, 1]",
            "parity": parity,
        },
        "mlflow_run_id": run_id,
    }
    return outputs.finish(out, NAME, metadata)


def _images(shots: list[Shot], read: Callable[[str], bytes], size: int) -> np.ndarray:
    opened = []
    for s in shots:
        with Image.open(io.BytesIO(read(s.sha256))) as image:
            opened.append(image.convert("RGB"))
    return crop.to_input(opened, size)


def _boxes(shots: list[Shot]) -> np.ndarray:
    return np.asarray([s.crop for s in shots], np.float32).reshape(-1, 4)


def _evaluate(
    network: crop.BoxNetwork,
    x: np.ndarray,
    truth: np.ndarray,
    train_boxes: np.ndarray,
    shots: list[Shot],
) -> dict[str, Any]:
    predicted = crop.predict(network, x)
    stages = [s.stage for s in shots]
    whole = crop.whole_image(len(truth))
    centred = crop.centre_crop(train_boxes, len(truth))
    return {
        "proposer": crop.measures(predicted, truth),
        "whole_image": crop.measures(whole, truth),
        "centre_crop": crop.measures(centred, truth),
        "by_stage": {
            "proposer": crop.by_stage(predicted, truth, stages),
            "whole_image": crop.by_stage(whole, truth, stages),
            "centre_crop": crop.by_stage(centred, truth, stages),
        },
    }


def _judge(test: dict[str, Any], n_crops: int, gate: dict[str, float]) -> tuple[str, list[str]]:
    iou = test["proposer"]["mean_iou"]
    reasons = []
    if n_crops < gate["min_test_crops"]:
        reasons.append(
            f"{n_crops} test crops < {gate['min_test_crops']:.0f}: no evidence either way"
        )
    if not iou >= gate["min_mean_iou"]:
        reasons.append(f"mean IoU {iou:.3f} < {gate['min_mean_iou']}")
    for who, key, label in (
        ("centre_crop", "min_margin_over_centre_crop", "the centre crop"),
        ("whole_image", "min_margin_over_whole_image", "the whole image"),
    ):
        theirs = test[who]["mean_iou"]
        if not iou - theirs >= gate[key]:
            reasons.append(
                f"mean IoU {iou:.3f} does not beat {label} ({theirs:.3f}) by {gate[key]}"
            )
    return ("FAIL" if reasons else "PASS"), reasons


def _export(
    network: crop.BoxNetwork, x: np.ndarray, target: Path, gate: dict[str, float], size: int
) -> dict[str, Any]:
    def check(onnx: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        worst = 0.0
        if len(x):
            worst = float(np.max(np.abs(crop.predict(network, x) - onnx(x))))
        return {"photos": len(x), "max_abs_diff": worst, "tolerance": gate["parity_box"]}

    example = torch.zeros(2, 3, size, size)
    return outputs.export_checked(network, example, target, (crop.INPUT, crop.OUTPUT), check)
