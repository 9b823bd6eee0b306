"""Register the photo-selection models a run cleared: ``selection-ranker`` and
``selection-crop`` in the MLflow registry, a version per distinct ONNX, alias ``candidate``.

Only a model whose metadata says gate PASS is registered. The version points at the model's
MLflow run (its artifacts hold the ONNX and the PyTorch weights); the ONNX on disk is checked
against the metadata's sha256 first, and the same ONNX registered again (a deterministic
re-run) returns the version it already has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modelyard.errors import IntegrityError, RegistryError
from modelyard.export.manifest import sha256_path
from modelyard.registry.aliases import set_alias
from modelyard.registry.predictor import version_with
from modelyard.registry.register import CANDIDATE

log = logging.getLogger(__name__)

TASKS = {"ranker": "rank-burst", "crop": "propose-crop"}


def model_name(model: str) -> str:
    return f"selection-{model}"


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
        test = metadata["metrics"]["test"]
        found = client.create_model_version(
            name,
            client.get_run(run_id).info.artifact_uri,
            run_id=run_id,
            tags={
                "gate_status": "PASS",
                "onnx_sha256": actual,
                "data_hash": metadata["data_hash"],
                "dataset": metadata["dataset"],
                **{f"test.{k}": str(v) for k, v in test.items()},
            },
            description=f"{model} trained on {metadata['dataset']} at {metadata['trained_at']}",
        )
        log.info("registered %s version %s", name, found.version)
    set_alias(client, name, CANDIDATE, str(found.version))
    return {"name": name, "version": str(found.version), "created": str(created).lower()}
