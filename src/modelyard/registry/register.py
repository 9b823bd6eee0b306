"""Register a gated model: one MLflow registered model per policy and task
(``<policy>-<task>``), a new version per evaluated bundle, and its ``verify_ai_ml_models`` row.

The version's files are logged to the training run under ``bundle/<hash>/`` — every format's
artifacts and manifest, ``calibration.json``, the model card, the gate report, the evaluation
and ``bundle.json`` (each file's role, format, precision, size and sha256) — and the version
points at that folder. It carries the run's lineage tags (git sha, dataset, snapshot hash,
dvc.lock hash, params hash), the gate verdict, and the model card as its description.

The alias ``candidate`` is set only when the gate report says PASS. Every artifact's sha256 is
checked against its manifest before anything is written. Registering the same bundle again
(the same content hash) returns the existing version and row: nothing is duplicated.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.db import models
from modelyard.db.connection import Connection
from modelyard.errors import GateError, RegistryError
from modelyard.evaluation import gate_report, gates
from modelyard.export import formats
from modelyard.export.manifest import sha256_path, size_bytes
from modelyard.registry.aliases import set_alias
from modelyard.tracking import Tracker
from modelyard.training.lineage import canonical_hash

log = logging.getLogger(__name__)

CANDIDATE = "candidate"
LINEAGE_TAGS = (
    "git_sha",
    "git_dirty",
    "dataset_id",
    "snapshot_hash",
    "dvc_lock_hash",
    "params_hash",
)
SCHEMA_VERSION = "1"


@dataclass(frozen=True, kw_only=True)
class RegisterInputs:
    model: Path  # train's folder (config.json, classes.json, the checkpoint)
    exports: Path  # export's folder, one sub-folder per format
    evaluation: Path  # evaluate's folder (evaluation.json, calibration.json)
    gate_report: Path
    card: Path
    train_report: Path  # the MLflow run and job ids
    snapshot: Path  # snapshot.json


@dataclass(frozen=True, kw_only=True)
class Registered:
    name: str
    version: str
    status: str  # the gate's PASS | FAIL
    alias: str | None
    model_row_id: str
    source: str
    created: bool  # False: this bundle was registered before, nothing new was written

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True, kw_only=True)
class _Documents:
    """What the stages before wrote, read once."""

    gate: dict[str, Any]
    evaluation: dict[str, Any]
    train: dict[str, Any]
    snapshot: dict[str, Any]
    card: str


@dataclass(frozen=True, kw_only=True)
class _Bundle:
    files: list[dict[str, Any]]
    hash: str

    def listing(self, gate_status: str) -> dict[str, Any]:
        public = [{k: v for k, v in f.items() if k != "local"} for f in self.files]
        return {"schema_version": 1, "files": public, "gate_status": gate_status}


def model_name(policy_id: str, task: str) -> str:
    return f"{policy_id}-{task}"


def register(
    conn: Connection, tracker: Tracker, policy_id: str, inputs: RegisterInputs
) -> Registered:
    docs = _Documents(
        gate=_read(inputs.gate_report),
        evaluation=_read(inputs.evaluation / "evaluation.json"),
        train=_read(inputs.train_report),
        snapshot=_read(inputs.snapshot),
        card=inputs.card.read_text(encoding="utf-8") if inputs.card.is_file() else "",
    )
    gate_report.validate(docs.gate)
    run_id = str(docs.train.get("mlflow_run_id") or "")
    if not run_id:
        raise RegistryError(f"{inputs.train_report}: no mlflow_run_id; re-run the train stage")
    _check_gate_inputs(docs.gate)
    files = bundle_files(inputs)
    bundle = _Bundle(
        files=files,
        hash=canonical_hash(_Bundle(files=files, hash="").listing(docs.gate["status"]))[:16],
    )
    name = model_name(policy_id, docs.evaluation["task"])
    client = tracker.client
    existing = _version_with_bundle(client, name, bundle.hash)
    created = existing is None
    if existing is None:
        existing = _create_version(client, name, run_id, docs, bundle)
    else:
        log.info("bundle %s is already %s version %s", bundle.hash, name, existing.version)
    version = str(existing.version)
    alias = None
    if docs.gate["status"] == gates.PASS:
        set_alias(client, name, CANDIDATE, version)
        alias = CANDIDATE
    row_id = models.record(conn, _row(name, version, existing.source, files, docs))
    client.set_tag(run_id, "registered_model", f"{name}/{version}")
    return Registered(
        name=name,
        version=version,
        status=docs.gate["status"],
        alias=alias,
        model_row_id=str(row_id),
        source=existing.source,
        created=created,
    )


def bundle_files(inputs: RegisterInputs) -> list[dict[str, Any]]:
    """Every file of the bundle: its path in the bundle, role, format, precision, size and
    sha256 (an export artifact's sha256 checked against its manifest first)."""
    files = []
    for manifest_path in sorted(inputs.exports.glob("*/manifest.json")):
        manifest = _read(manifest_path)
        fmt = formats.get(manifest["format"])
        for artifact in manifest["artifacts"]:
            path = manifest_path.parent / artifact["file"]
            actual = sha256_path(path)
            if actual != artifact["sha256"]:
                raise RegistryError(
                    f"{fmt.name}/{artifact['file']}: sha256 {actual[:12]}... is not the "
                    f"manifest's {artifact['sha256'][:12]}...; re-run `dvc repro export`"
                )
            files.append(
                {
                    "path": f"{fmt.name}/{artifact['file']}",
                    "role": "model",
                    "format": fmt.name,
                    "precision": artifact["precision"],
                    "batch": artifact["batch"],
                    "primary": artifact["file"] == fmt.primary + fmt.suffix,
                    "size_bytes": artifact["size_bytes"],
                    "sha256": actual,
                    **verification(fmt.name, artifact["parity"]),
                    "local": str(path),
                }
            )
        files.append(_extra(manifest_path, f"{fmt.name}/manifest.json", "manifest"))
    if not any(f["role"] == "model" for f in files):
        raise RegistryError(f"no exported artifacts under {inputs.exports}; run `dvc repro export`")
    files += [
        _extra(inputs.evaluation / "calibration.json", "calibration.json", "calibration"),
        _extra(inputs.evaluation / "evaluation.json", "evaluation.json", "evaluation"),
        _extra(inputs.gate_report, "gate.json", "gate_report"),
        _extra(inputs.card, "model_card.md", "model_card"),
        _extra(inputs.model / "config.json", "config.json", "training_config"),
        _extra(inputs.model / "classes.json", "classes.json", "classes"),
    ]
    return files


def verification(fmt: str, parity: dict[str, Any]) -> dict[str, Any]:
    """Whether an artifact's numbers were checked against PyTorch in its own runtime, and what
    says so: only a passed parity check verifies it (a skipped one, such as CoreML's off
    macOS, does not; ``modelyard export verify`` on a machine that runs the format does)."""
    if parity["status"] == "passed":
        return {"verified": True, "verification": f"{fmt} parity passed in its runtime"}
    return {"verified": False, "verification": f"parity {parity['status']}: {parity['reason']}"}


def _extra(path: Path, name: str, role: str) -> dict[str, Any]:
    if not path.exists():
        raise RegistryError(f"{path}: missing; run the stage that writes it before `register`")
    return {
        "path": name,
        "role": role,
        "size_bytes": size_bytes(path),
        "sha256": sha256_path(path),
        "local": str(path),
    }


def _check_gate_inputs(gate: dict[str, Any]) -> None:
    """The gate judged these files; they must not have changed since."""
    for item in gate["provenance"]["inputs"]:
        path = Path(item["path"])
        if path.exists() and sha256_path(path) != item["sha256"]:
            raise GateError(
                f"{path} changed after the gate judged it (sha256 differs from gate.json); "
                "re-run `dvc repro gate` before registering"
            )


def _version_with_bundle(client: Any, name: str, bundle_hash: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(
            f"name = '{name}' and tag.bundle_hash = '{bundle_hash}'"
        )
    except MlflowException:
        return None
    return found[0] if found else None


def _create_version(client: Any, name: str, run_id: str, docs: _Documents, bundle: _Bundle) -> Any:
    import tempfile

    from mlflow.exceptions import MlflowException

    folder = f"bundle/{bundle.hash}"
    for item in bundle.files:
        parent = str(Path(folder) / Path(item["path"]).parent).rstrip("/.")
        local = Path(item["local"])
        if local.is_dir():
            client.log_artifacts(run_id, str(local), f"{parent}/{local.name}")
        else:
            client.log_artifact(run_id, str(local), parent)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "bundle.json"
        listing.write_text(json.dumps(bundle.listing(docs.gate["status"]), indent=2), "utf-8")
        client.log_artifact(run_id, str(listing), folder)
    try:
        client.create_registered_model(name, tags={"task": docs.evaluation["task"]})
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    run = client.get_run(run_id)
    tags = {k: run.data.tags[k] for k in LINEAGE_TAGS if k in run.data.tags}
    tags |= {
        "bundle_hash": bundle.hash,
        "gate_status": docs.gate["status"],
        "gate_summary": docs.gate["summary"][:4000],
        "architecture": docs.evaluation["architecture"],
        "task": docs.evaluation["task"],
    }
    source = f"{run.info.artifact_uri}/{folder}"
    version = client.create_model_version(
        name, source, run_id=run_id, tags=tags, description=docs.card
    )
    log.info("registered %s version %s (gate %s)", name, version.version, docs.gate["status"])
    return version


def _row(
    name: str, version: str, source: str, files: list[dict[str, Any]], docs: _Documents
) -> dict[str, Any]:
    pytorch = docs.evaluation["pytorch"]
    row: dict[str, Any] = {
        "dataset_id": docs.snapshot["dataset"]["id"],
        "job_id": docs.train.get("job_id"),
        "base_architecture": docs.evaluation["architecture"],
        "ontology_version": docs.snapshot["dataset"].get("ontology_version"),
        "schema_version": SCHEMA_VERSION,
        "accuracy": pytorch.get("accuracy"),
        "precision_score": pytorch.get("precision"),
        "recall": pytorch.get("recall"),
        "f1_score": pytorch.get("f1"),
        "map50": pytorch.get("map50"),
        "map50_95": pytorch.get("map50_95"),
        "mlflow_model_name": name,
        "mlflow_model_version": version,
    }
    latency = {
        a["format"]: a["inference_time_ms"]
        for a in docs.evaluation["artifacts"]
        if a["file"].startswith(formats.get(a["format"]).primary + ".")
    }
    row["inference_time_ms"] = latency.get("onnx")
    for f in files:
        if f["role"] == "model" and f["primary"]:
            row[f"{f['format']}_path"] = f"{source}/{f['path']}"
            row[f"sha256_{f['format']}"] = f["sha256"]
    return row


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RegistryError(f"{path}: missing; run the stage that writes it before `register`")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
