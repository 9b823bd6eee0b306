"""The bundle table's guards, on the real database: consecutive versions, one bundle per model
version, one active bundle per policy and tier, and the activation trigger."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from modelyard.db import bundles
from modelyard.db.bundles import NewBundle
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import NotFoundError

pytestmark = pytest.mark.postgres


def new(dataset: Dataset, version: str, gate: str = "PASS", force: str | None = None) -> NewBundle:
    return NewBundle(
        policy_id=dataset.policy_id, mlflow_model_name="m-detect", mlflow_model_version=version,
        bundle_hash=f"h{version}", gate_status=gate, force_reason=force, promoted_by="t",
        ontology_version=None, schema_version="1", policy_ast={"root": {}},
        training_dataset_id=str(dataset.id), git_sha="abc", gold_eval_results={},
    )  # fmt: skip


ARTIFACTS = [{"path": "onnx/model.onnx", "role": "model", "sha256": "0" * 64, "size_bytes": 1}]


def reserve(conn: Connection, dataset: Dataset, version: str, **kw: Any) -> dict[str, Any]:
    row, _ = bundles.reserve(conn, new(dataset, version, **kw), ARTIFACTS, "b/p/v{version}")
    return row


def activate(conn: Connection, row: dict[str, Any], tier: str = "canary") -> None:
    with conn.transaction():
        bundles.set_active(conn, row["id"], tier=tier, weight=10, targeting=None)


def make_ready(conn: Connection, row: dict[str, Any]) -> None:
    bundles.mark_verified(conn, row["id"])
    assert bundles.add_promotion_stats(conn, row["id"], {"histograms": {}}, 3)
    assert not bundles.add_promotion_stats(conn, row["id"], {"histograms": {}}, 3)  # once


def test_versions_are_consecutive_and_one_per_model_version(
    conn: Connection, dataset: Dataset
) -> None:
    first = reserve(conn, dataset, "1")
    second = reserve(conn, dataset, "2")
    again, created = bundles.reserve(conn, new(dataset, "1"), ARTIFACTS, "b/p/v{version}")
    assert (first["bundle_version"], second["bundle_version"]) == (1, 2)
    assert again["id"] == first["id"] and not created
    assert second["artifacts"][0]["storage_path"] == "b/p/v2/onnx/model.onnx"
    assert [e["event"] for e in bundles.events(conn, bundle_id=first["id"])] == ["created"]


def test_activation_needs_verified_artifacts_reference_stats_and_a_passed_gate(
    conn: Connection, dataset: Dataset
) -> None:
    row = reserve(conn, dataset, "1")
    with pytest.raises(psycopg.errors.CheckViolation, match="artifacts are not verified"):
        activate(conn, row)
    bundles.mark_verified(conn, row["id"])
    with pytest.raises(psycopg.errors.CheckViolation, match="no promotion reference statistics"):
        activate(conn, row)
    assert bundles.add_promotion_stats(conn, row["id"], {"histograms": {}}, 3)
    activate(conn, row)
    assert bundles.active(conn, dataset.policy_id, "canary")["id"] == row["id"]

    failed = reserve(conn, dataset, "2", gate="FAIL")
    make_ready(conn, failed)
    with pytest.raises(psycopg.errors.CheckViolation, match="gate is FAIL"):
        activate(conn, failed, "production")
    forced = reserve(conn, dataset, "3", gate="FAIL", force="hotfix")
    make_ready(conn, forced)
    activate(conn, forced, "production")
    assert [e["event"] for e in bundles.events(conn, bundle_id=forced["id"])] == [
        "created",
        "forced",
    ]


def test_one_active_bundle_per_policy_and_tier(conn: Connection, dataset: Dataset) -> None:
    first, second = reserve(conn, dataset, "1"), reserve(conn, dataset, "2")
    make_ready(conn, first)
    make_ready(conn, second)
    activate(conn, first)
    with pytest.raises(psycopg.errors.UniqueViolation):
        activate(conn, second)
    activate(conn, second, "production")  # the other tier is free


def test_the_audit_log_is_append_only(conn: Connection, dataset: Dataset) -> None:
    row = reserve(conn, dataset, "1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute("DELETE FROM verify_ai_bundle_events WHERE bundle_id = %s", (row["id"],))


def test_bundle_references(conn: Connection, dataset: Dataset) -> None:
    row = reserve(conn, dataset, "1")
    policy = dataset.policy_id
    assert bundles.get(conn, f"{policy}/v1")["id"] == row["id"]
    assert bundles.get(conn, f"{policy}:1")["id"] == row["id"]
    assert bundles.get(conn, str(row["id"]))["id"] == row["id"]
    with pytest.raises(NotFoundError, match="no such bundle"):
        bundles.get(conn, f"{policy}/canary")  # none active
    with pytest.raises(NotFoundError, match="not an id"):
        bundles.get(conn, "nonsense")
