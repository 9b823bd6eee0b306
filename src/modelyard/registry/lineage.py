"""The chain an auditor walks from a bundle to the sample rows that trained its model, each
link found by a query on the one before it (nothing is typed by hand):

bundle row -> its artifacts, re-read from the bucket with their sha256 checked -> the MLflow
model version (``mlflow_model_name``/``mlflow_model_version``) and its lineage tags -> the
MLflow run (``run_id``): params, metrics, package versions -> ``model_training_runs``
(``model_version`` = the run id) -> ``model_training_snapshot_labels`` -> the sample rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.db import bundles, provenance
from modelyard.db.connection import Connection
from modelyard.errors import IntegrityError, NotFoundError, StorageError
from modelyard.storage import ObjectStore

LINEAGE_TAGS = ("git_sha", "git_dirty", "dataset_id", "snapshot_hash", "dvc_lock_hash",
                "params_hash", "bundle_hash", "gate_status")  # fmt: skip
MATCHES = "sha256 matches"  # an artifact's ``verified`` when the bucket holds its bytes


@dataclass(frozen=True, kw_only=True)
class Link:
    name: str
    query: str  # how this link was found from the one before
    facts: dict[str, Any]


def chain(conn: Connection, client: Any, store: ObjectStore, ref: str) -> list[Link]:
    from mlflow.exceptions import MlflowException

    bundle = bundles.get(conn, ref)
    links = [
        Link(
            name="bundle",
            query=f"verify_ai_model_bundles where {_where(ref)}",
            facts={
                "id": str(bundle["id"]),
                "policy_id": bundle["policy_id"],
                "bundle_version": bundle["bundle_version"],
                "active": bundle["is_active"],
                "tier": bundle["bundle_tier"],
                "weight": bundle["weight"],
                "gate_status": bundle["gate_status"],
                "forced": bundle["force_reason"],
                "git_sha": bundle["git_sha"],
                "activated_at": str(bundle["activated_at"] or ""),
            },
        ),
        Link(
            name="artifacts",
            query="the bucket, at each of the row's artifacts[].storage_path",
            facts={"files": [_check_object(store, a) for a in bundle["artifacts"]]},
        ),
    ]
    name, version = bundle["mlflow_model_name"], bundle["mlflow_model_version"]
    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise NotFoundError(
            f"MLflow model {name} v{version} (bundle {ref}): {exc.message}"
        ) from exc
    tags = dict(mv.tags or {})
    links.append(
        Link(
            name="mlflow model version",
            query=f"MLflow registry: model '{name}' version {version}",
            facts={
                "source": mv.source,
                "run_id": mv.run_id,
                "aliases": list(mv.aliases or []),
                "stage": mv.current_stage,
                **{k: tags.get(k) for k in LINEAGE_TAGS},
            },
        )
    )
    run = client.get_run(mv.run_id)
    run_tags = run.data.tags
    links.append(
        Link(
            name="mlflow run",
            query=f"MLflow run {mv.run_id} (the version's run_id)",
            facts={
                "experiment_id": run.info.experiment_id,
                "status": run.info.status,
                "params": len(run.data.params),
                "metrics": {  # the test-split figures the gate judged, and the best validation
                    k: round(v, 4)
                    for k, v in sorted(run.data.metrics.items())
                    if k.startswith("eval.pytorch.") or k == "best_val_map50"
                },
                "git_sha": run_tags.get("git_sha"),
                "packages": {
                    k.removeprefix("version."): v
                    for k, v in run_tags.items()
                    if k.startswith("version.")
                },
            },
        )
    )
    training = provenance.training_run(conn, mv.run_id)
    if training is None:
        raise NotFoundError(
            f"no model_training_runs row for MLflow run {mv.run_id}: the lineage stops at the "
            "run (was it trained outside `dvc repro train`?)"
        )
    params = training["params_json"] or {}
    links.append(
        Link(
            name="model_training_runs",
            query=f"model_training_runs where model_version = '{mv.run_id}'",
            facts={
                "id": str(training["id"]),
                "trained_at": str(training["trained_at"]),
                "snapshot_hash": params.get("snapshot_hash"),
                "snapshot_labels": training["samples"],
            },
        )
    )
    rows = provenance.samples_of_run(conn, mv.run_id)
    links.append(
        Link(
            name="sample rows",
            query="verify_ai_ml_samples joined through model_training_snapshot_labels "
            f"(training_run_id = {training['id']})",
            facts={
                "count": len(rows),
                "datasets": sorted({str(r["dataset_id"]) for r in rows}),
                "splits": _count(r["split"] for r in rows),
                "rows": [
                    {
                        "id": str(r["id"]),
                        "image_path": r["image_path"],
                        "image_sha256": r["image_sha256"],
                        "split": r["split"],
                        "group_key": r["group_key"],
                        "label_source": r["used_label_source"],
                    }
                    for r in rows
                ],
            },
        )
    )
    return links


def _check_object(store: ObjectStore, artifact: dict[str, Any]) -> dict[str, Any]:
    entry = {k: artifact.get(k) for k in ("path", "role", "format", "sha256", "storage_path")}
    if artifact.get("format") == "coreml" and artifact["path"].endswith(".mlpackage"):
        entry["verified"] = "folder (per-file sha256 checked on upload)"
        return entry
    try:
        store.get_object(artifact["storage_path"], artifact["sha256"])
        entry["verified"] = MATCHES
    except (NotFoundError, IntegrityError, StorageError) as exc:
        entry["verified"] = f"FAILED: {exc}"
    return entry


def _where(ref: str) -> str:
    policy, _, rest = ref.partition("/")
    if rest in ("canary", "production"):
        return f"policy_id = '{policy}' and bundle_tier = '{rest}' and is_active"
    if "/" in ref or ":" in ref:
        return f"(policy_id, bundle_version) given as {ref!r}"
    return f"id = '{ref}'"


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))
