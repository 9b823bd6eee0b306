"""A photo-selection model in the layout the bridge bundles, and its reference statistics
measured with its own ONNX (the whole path through MLflow, the bridge and a device is in
test_ranker's end-to-end test)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from modelyard.errors import StateError
from modelyard.export.manifest import sha256_path
from modelyard.monitoring import selection_reference
from modelyard.registry import selection as selection_registry
from modelyard.selection import crop, outputs
from modelyard.selection.data import Shot
from modelyard.training.lineage import canonical_hash


def _photos(n: int) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    blobs = {}
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8)).save(buffer, "PNG")
        blobs[f"{i:064x}"] = buffer.getvalue()
    return blobs


def _shots(blobs: dict[str, bytes]) -> list[Shot]:
    out = []
    for i, sha in enumerate(blobs):
        cropped = i % 2 == 1
        out.append(
            Shot(
                sample_id=str(i),
                sha256=sha,
                file=f"p{i}.png",
                group=f"g{i // 3}",
                project="p",
                split="test" if i < 9 else "train",
                action="crop" if cropped else "approve",
                stage=1 + i % 3,
                crop=(0.1, 0.2, 0.7, 0.9) if cropped else None,
            )
        )
    return out


def _crop_model(folder: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    params = crop.CropParams(image_size=32)
    network = crop.BoxNetwork(params).eval()
    parity = outputs.export_checked(
        network, torch.zeros(2, 3, 32, 32), folder / "crop.onnx", (crop.INPUT, crop.OUTPUT),
        lambda run: {"photos": 0, "max_abs_diff": 0.0, "tolerance": 1e-4},
    )  # fmt: skip
    figures = {"mean_iou": 0.6, "bde": 0.07, "centre_distance": 0.07}
    metadata = {
        "model": "crop", "trained_at": "2026-12-04T00:00:00+00:00", "dataset": "photo-lab/b",
        "dataset_id": "00000000-0000-0000-0000-000000000001", "data_hash": "d" * 64,
        "sizes": {}, "params": {"image_size": 32}, "metrics": {"test": figures},
        "baselines": {"test": {"centre_crop": figures}},
        "gate": {"status": "PASS", "reasons": [], "thresholds": {"min_mean_iou": 0.5}},
        "onnx": {"file": "crop.onnx", "sha256": sha256_path(folder / "crop.onnx"),
                 "input": crop.INPUT, "output": crop.OUTPUT, "call": "N x 3 x 32 x 32",
                 "parity": parity},
    }  # fmt: skip
    (folder / "crop_metadata.json").write_text(json.dumps(metadata), "utf-8")
    return metadata


def test_the_bundle_lists_every_file_and_hashes_the_same_twice(tmp_path: Path) -> None:
    metadata = _crop_model(tmp_path)
    hashes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        hashes.append(selection_registry.write_bundle(metadata, tmp_path, tmp_path / name))
    assert hashes[0] == hashes[1]
    listing = json.loads((tmp_path / "a" / "bundle.json").read_text())
    assert canonical_hash(listing)[:16] == hashes[0]
    for item in listing["files"]:
        assert sha256_path(tmp_path / "a" / item["path"]) == item["sha256"]
    roles = {f["role"]: f for f in listing["files"]}
    assert set(roles) == {"model", "manifest", "evaluation", "gate_report", "metadata"}
    assert roles["model"]["format"] == "onnx" and roles["model"]["primary"]
    spec = json.loads((tmp_path / "a" / "onnx" / "manifest.json").read_text())
    assert spec["task"] == "propose-crop" and spec["input"]["shape"] == ["N", 3, 32, 32]
    gate = json.loads((tmp_path / "a" / "gate.json").read_text())
    assert gate["status"] == "PASS"


def test_crop_reference_statistics_are_the_onnx_boxes_on_the_test_photos(tmp_path: Path) -> None:
    metadata = _crop_model(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    selection_registry.write_bundle(metadata, tmp_path, bundle)
    blobs = _photos(12)
    shots = _shots(blobs)
    measured = selection_reference.capture(bundle, shots, blobs.__getitem__)
    test = [s for s in shots if s.split == "test"]
    assert measured.sample_count == len(test) == 9
    stats = measured.stats
    assert stats["task"] == "propose-crop"
    for name in (*selection_reference.BOX, "brightness", "contrast", "blur"):
        assert sum(stats["histograms"][name]["counts"]) == 9, name
    images = [Image.open(io.BytesIO(blobs[s.sha256])).convert("RGB") for s in test]
    x = crop.to_input(images, 32)
    torch.manual_seed(0)  # the same network as _crop_model's, its boxes from PyTorch
    network = crop.BoxNetwork(crop.CropParams(image_size=32)).eval()
    boxes = crop.predict(network, x)
    width = stats["histograms"]["box_width"]
    assert width["mean"] == pytest.approx(float((boxes[:, 2] - boxes[:, 0]).mean()), abs=1e-5)
    cropped = [i for i, s in enumerate(test) if s.crop]
    truth = np.asarray([test[i].crop for i in cropped], np.float32)
    expected = float(crop.iou(boxes[cropped], truth).mean())
    assert stats["agreement"]["mean_iou"] == pytest.approx(expected, abs=1e-5)
    assert stats["agreement"]["cropped_photos"] == len(cropped) == 4


def test_a_ranker_on_backbone_embeddings_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "r.onnx").write_bytes(b"")
    spec = {"task": "rank-burst", "outputs": ["score"], "input": {"kind": "all"},
            "artifacts": [{"file": "r.onnx"}]}  # fmt: skip
    (tmp_path / "onnx" / "manifest.json").write_text(json.dumps(spec))
    blobs = _photos(3)
    with pytest.raises(StateError, match=r"ranker\.inputs: crafted"):
        selection_reference.capture(tmp_path, _shots(blobs), blobs.__getitem__)
