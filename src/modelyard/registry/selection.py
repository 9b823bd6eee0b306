"""Register the photo-selection models a run cleared: ``selection-ranker`` and
``selection-crop`` in the MLflow registry, a version per distinct ONNX, alias ``candidate``,
in the layout the bridge bundles.

Only a model whose metadata says gate PASS is registered. The ONNX on disk is checked
against the metadata's sha256 first, and the same ONNX registered again (a deterministic
re-run) returns the version it already has. The version points at ``bundle/<hash>/`` in its
MLflow run, which holds what a detector's bundle holds:

* ``onnx/<model>.onnx`` and ``onnx/manifest.json`` (task, input and output names, the
  input's shape and what goes in it, the artifact's sha256 and parity);
* ``evaluation.json`` (headline metric, test figures beside the baselines);
* ``gate.json`` (PASS and the thresholds it was judged on);
* ``<model>_metadata.json`` (what training wrote);
* ``bundle.json``, every file's role, size and sha256; its hash is the version's
  ``bundle_hash`` tag, and the ``dataset_id`` tag names the dataset (so the policy) the bridge
  measures reference statistics on.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from modelyard.errors import IntegrityError, RegistryError
from modelyard.export.manifest import sha256_path, size_bytes, tool_versions
from modelyard.registry.aliases import set_alias
from modelyard.registry.predictor import version_with
from modelyard.registry.register import CANDIDATE, LINEAGE_TAGS
from modelyard.training.lineage import canonical_hash

log = logging.getLogger(__name__)

TASKS = {"ranker": "rank-burst", "crop": "propose-crop"}
ARCHITECTURES = {"ranker": "burst-mlp", "crop": "heatmap-box"}
HEADLINES = {"ranker": "selection_accuracy", "crop": "mean_iou"}


def model_name(model: str) -> str:
    return f"selection-{model}"


def is_selection(task: str) -> bool:
    return task in TASKS.values()


def register(client: Any, metadata: dict[str, Any], folder: Path) -> dict[str, str] | None:
    """Register the model ``metadata`` describes (its files in ``folder``); None when its gate
    did not pass. (name, version, created)."""
    from mlflow.exceptions import MlflowException

    model = metadata["model"]
    if metadata["gate"]["status"] != "PASS":
        log.info("%s: gate %s, nothing registered", model, metadata["gate"]["status"])
        return None
    run_id = metadata.get("mlflow_run_id")
    if not run_id:
        raise RegistryError(f"{model}: the metadata names no MLflow run; train with tracking on")
    onnx = folder / metadata["onnx"]["file"]
    actual = sha256_path(onnx)
    if actual != metadata["onnx"]["sha256"]:
        raise IntegrityError(
            f"{onnx}: sha256 {actual[:12]}... is not the metadata's "
            f"{metadata['onnx']['sha256'][:12]}...; train it again"
        )
    name = model_name(model)
    found = version_with(client, name, actual)
    created = found is None
    if found is None:
        try:
            client.create_registered_model(name, tags={"task": TASKS[model]})
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        with tempfile.TemporaryDirectory(prefix="modelyard-selection-") as tmp:
            bundle_hash = write_bundle(metadata, folder, Path(tmp))
            client.log_artifacts(run_id, tmp, f"bundle/{bundle_hash}")
        test = metadata["metrics"]["test"]
        lineage = client.get_run(run_id).data.tags
        found = client.create_model_version(
            name,
            f"{client.get_run(run_id).info.artifact_uri}/bundle/{bundle_hash}",
            run_id=run_id,
            tags={
                **{k: lineage[k] for k in LINEAGE_TAGS if k in lineage},
                "gate_status": "PASS",
                "onnx_sha256": actual,
                "bundle_hash": bundle_hash,
                "dataset_id": metadata["dataset_id"],
                "task": TASKS[model],
                "architecture": ARCHITECTURES[model],
                "data_hash": metadata["data_hash"],
                "dataset": metadata["dataset"],
                **{f"test.{k}": str(v) for k, v in test.items()},
            },
            description=f"{model} trained on {metadata['dataset']} at {metadata['trained_at']}",
        )
        log.info("registered %s version %s (bundle %s)", name, found.version, bundle_hash)
    set_alias(client, name, CANDIDATE, str(found.version))
    return {"name": name, "version": str(found.version), "created": str(created).lower()}


def write_bundle(metadata: dict[str, Any], folder: Path, into: Path) -> str:
    """The bundle's files in ``into`` (``bundle.json`` last); the bundle hash."""
    model = metadata["model"]
    onnx = metadata["onnx"]
    (into / "onnx").mkdir()
    shutil.copyfile(folder / onnx["file"], into / "onnx" / onnx["file"])
    shutil.copyfile(folder / f"{model}_metadata.json", into / f"{model}_metadata.json")
    documents = {
        "onnx/manifest.json": _manifest(metadata, size_bytes(into / "onnx" / onnx["file"])),
        "evaluation.json": _evaluation(metadata),
        "gate.json": _gate(metadata["gate"]),
    }
    for path, document in documents.items():
        (into / path).write_text(json.dumps(document, indent=2, sort_keys=True), "utf-8")
    files = [
        {
            **_file(into, f"onnx/{onnx['file']}", "model"),
            "format": "onnx",
            "precision": "fp32",
            "batch": "dynamic",
            "primary": True,
            "verified": True,  # its gate checked it against PyTorch
            "verification": f"onnx parity passed in its runtime (max difference "
            f"{onnx['parity']['max_abs_diff']:.1e})",
        },
        _file(into, "onnx/manifest.json", "manifest"),
        _file(into, "evaluation.json", "evaluation"),
        _file(into, "gate.json", "gate_report"),
        _file(into, f"{model}_metadata.json", "metadata"),
    ]
    listing = {"schema_version": 1, "files": files, "gate_status": metadata["gate"]["status"]}
    (into / "bundle.json").write_text(json.dumps(listing, indent=2), "utf-8")
    return canonical_hash(listing)[:16]


def gold(evaluation: dict[str, Any]) -> dict[str, Any]:
    """What a selection bundle's row keeps of its evaluation: the test figures and baselines."""
    return {
        "metrics": evaluation["metrics"]["test"],
        "baselines": evaluation["baselines"]["test"],
    }


def _manifest(metadata: dict[str, Any], size: int) -> dict[str, Any]:
    model, onnx, params = metadata["model"], metadata["onnx"], metadata["params"]
    if model == "crop":
        side = int(params["image_size"])
        spec: dict[str, Any] = {
            "name": onnx["input"], "shape": ["N", 3, side, side], "dtype": "float32",
            "layout": "NCHW", "range": [0.0, 1.0], "resize": "bilinear, aspect not kept",
        }  # fmt: skip
        output = "N x [x1, y1, x2, y2], normalised to the photo"
    else:
        columns = list(metadata["inputs"]["crafted"]) if params["inputs"] == "crafted" else []
        spec = {
            "name": onnx["input"], "shape": ["N", metadata["inputs"]["features"]],
            "dtype": "float32", "kind": params["inputs"], "columns": columns,
            "stage": bool(params["use_stage"]),
        }  # fmt: skip
        output = "N scores; the burst's highest is the photo to keep"
    return {
        "format": "onnx",
        "runtime": "onnxruntime",
        "architecture": ARCHITECTURES[model],
        "task": TASKS[model],
        "classes": [],
        "input": spec | {"call": onnx["call"]},
        "outputs": [onnx["output"]],
        "output": output,
        "artifacts": [
            {
                "file": onnx["file"],
                "precision": "fp32",
                "batch": "dynamic",
                "sha256": onnx["sha256"],
                "size_bytes": size,
                "parity": onnx["parity"],
            }
        ],
        "tools": tool_versions(),
    }


def _evaluation(metadata: dict[str, Any]) -> dict[str, Any]:
    model = metadata["model"]
    return {
        "task": TASKS[model],
        "architecture": ARCHITECTURES[model],
        "headline": HEADLINES[model],
        "dataset": metadata["dataset"],
        "dataset_id": metadata["dataset_id"],
        "data_hash": metadata["data_hash"],
        "sizes": metadata["sizes"],
        "metrics": metadata["metrics"],
        "baselines": metadata["baselines"],
        **({"by_stage": metadata["by_stage"]} if "by_stage" in metadata else {}),
    }


def _gate(gate: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": gate["status"],
        "summary": "; ".join(gate["reasons"]) or "every check passed",
        "reasons": gate["reasons"],
        "thresholds": gate["thresholds"],
    }


def _file(folder: Path, path: str, role: str) -> dict[str, Any]:
    return {
        "path": path,
        "role": role,
        "size_bytes": size_bytes(folder / path),
        "sha256": sha256_path(folder / path),
    }
