"""Register the quality predictors a run cleared: one MLflow registered model per codec
(``predictor-<codec>``), a version per distinct ONNX, alias ``candidate``.

Only a codec whose report entry is PASS with its ONNX written is registered; a
synthetic-smoke run registers nothing. The version points at the codec's MLflow run, whose
artifacts hold the ONNX, its metadata and the card; its ONNX sha256 is checked against the
report first. The same ONNX registered again (a deterministic re-run) returns the version it
already has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modelyard.errors import IntegrityError, RegistryError
from modelyard.evaluation.predictor.gate import PASS
from modelyard.export.manifest import sha256_path
from modelyard.registry.aliases import set_alias
from modelyard.registry.register import CANDIDATE

log = logging.getLogger(__name__)


def model_name(codec: str) -> str:
    return f"predictor-{codec}"


def register(client: Any, report: dict[str, Any]) -> list[dict[str, str]]:
    """Register every passing codec of ``report``; (codec, name, version, created) each."""
    if report.get("synthetic_smoke"):
        log.info("synthetic-smoke run: nothing is registered")
        return []
    out = []
    for entry in report["codecs"]:
        onnx = entry.get("onnx") or {}
        if entry["status"] != PASS or not onnx.get("written"):
            continue
        out.append(_register_one(client, entry, onnx, report))
    return out


def _register_one(
    client: Any, entry: dict[str, Any], onnx: dict[str, Any], report: dict[str, Any]
) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    codec, run_id = entry["codec"], entry.get("mlflow_run_id")
    if not run_id:
        raise RegistryError(f"{codec}: the report names no MLflow run; run with tracking on")
    actual = sha256_path(Path(onnx["path"]))
    if actual != onnx["sha256"]:
        raise IntegrityError(
            f"{onnx['path']}: sha256 {actual[:12]}... is not the report's "
            f"{onnx['sha256'][:12]}...; re-run `modelyard predictor train`"
        )
    name = model_name(codec)
    found = version_with(client, name, actual)
    created = found is None
    if found is None:
        try:
            client.create_registered_model(name, tags={"task": "predict-vmaf", "codec": codec})
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        run = client.get_run(run_id)
        tags = {
            "codec": codec,
            "gate_status": PASS,
            "onnx_sha256": actual,
            "mean_plcc": str(entry["mean_plcc"]),
            "plcc_spread": str(entry["plcc_spread"]),
            "n_rows": str(entry["n_rows_total"]),
            "n_sources": str(entry["n_distinct_sources"]),
            "git_sha": report["run_provenance"].get("git_sha", ""),
        }
        card = Path(entry["card"])
        found = client.create_model_version(
            name,
            run.info.artifact_uri,
            run_id=run_id,
            tags=tags,
            description=card.read_text(encoding="utf-8") if card.is_file() else "",
        )
        log.info("registered %s version %s", name, found.version)
    set_alias(client, name, CANDIDATE, str(found.version))
    return {"codec": codec, "name": name, "version": str(found.version),
            "created": str(created).lower()}  # fmt: skip


def version_with(client: Any, name: str, sha: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}' and tag.onnx_sha256 = '{sha}'")
    except MlflowException:
        return None
    return found[0] if found else None
