"""Register: a real MLflow registry and the real database, for a model that passed its gates
and one that did not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from modelyard import stages
from modelyard.db import connection
from modelyard.export.manifest import sha256_path
from modelyard.registry.register import CANDIDATE
from tests.registry.conftest import PARAMS, evaluate_into, gate, register_inputs
from tests.trained import Trained

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def evaluated(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The model exported and evaluated; the environment pointing at its database."""
    monkeypatch.setenv("DATABASE_URL", trained.database_url)
    monkeypatch.setenv("MODELYARD_HOME", str(trained.home))
    monkeypatch.chdir(tmp_path)
    return evaluate_into(trained, tmp_path)


def gate_and_register(trained: Trained, folder: Path, min_map50: float) -> tuple[dict, Any]:
    report = gate(trained, folder, min_map50)
    inputs = register_inputs(trained, folder)
    return report, stages.register(PARAMS, inputs, folder / "register.json")


def model_rows(url: str, name: str) -> list[dict[str, Any]]:
    with connection.connect(url) as conn:
        return conn.execute(
            "SELECT * FROM verify_ai_ml_models WHERE mlflow_model_name = %s "
            "ORDER BY mlflow_model_version",
            (name,),
        ).fetchall()


def test_failed_gate_is_registered_without_alias_and_a_pass_gets_candidate(
    trained: Trained, evaluated: Path
) -> None:
    client = MlflowClient(tracking_uri=trained.tracking_uri)
    failed, proposed = gate_and_register(trained, evaluated, min_map50=0.999)
    assert failed["status"] == "FAIL" and proposed.alias is None and proposed.created
    name = proposed.name
    assert name == "demo-policy-detect"
    assert client.get_registered_model(name).aliases == {}
    version = client.get_model_version(name, proposed.version)
    assert version.tags["gate_status"] == "FAIL"
    assert "gate-failed: pytorch map50" in version.description  # the card, as description
    assert version.tags["snapshot_hash"] and version.tags["git_sha"]  # lineage from the run

    passed, candidate = gate_and_register(trained, evaluated, min_map50=0.0)
    assert passed["status"] == "PASS" and candidate.alias == CANDIDATE
    assert int(candidate.version) == int(proposed.version) + 1
    assert str(client.get_model_version_by_alias(name, CANDIDATE).version) == candidate.version

    again = stages.register(PARAMS, register_inputs(trained, evaluated), evaluated / "again.json")
    assert again.version == candidate.version and not again.created  # nothing duplicated

    rows = model_rows(trained.database_url, name)
    assert [r["mlflow_model_version"] for r in rows] == [proposed.version, candidate.version]
    manifest = json.loads((evaluated / "export" / "onnx" / "manifest.json").read_text())
    primary = next(a for a in manifest["artifacts"] if a["file"] == "model.onnx")
    row = rows[-1]
    assert row["sha256_onnx"] == primary["sha256"]
    assert row["map50"] == pytest.approx(passed_map50(evaluated))
    assert row["inference_time_ms"] == primary["inference_time_ms"]
    assert row["tflite_path"] is None  # only the formats exported are recorded


def test_registered_version_holds_every_file_with_its_sha256(
    trained: Trained, evaluated: Path
) -> None:
    _, registered = gate_and_register(trained, evaluated, min_map50=0.0)
    folder = Path(registered.source.removeprefix("file://"))
    bundle = json.loads((folder / "bundle.json").read_text())
    roles = {f["role"] for f in bundle["files"]}
    assert roles >= {"model", "manifest", "calibration", "gate_report", "model_card", "evaluation"}
    for item in bundle["files"]:
        assert sha256_path(folder / item["path"]) == item["sha256"], item["path"]
    assert (folder / "model_card.md").read_text().count("Status: Production-ready") == 1


def test_a_changed_artifact_is_refused(trained: Trained, evaluated: Path) -> None:
    from modelyard.errors import RegistryError

    gate_and_register(trained, evaluated, min_map50=0.0)
    with (evaluated / "export" / "onnx" / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(RegistryError, match=r"model.onnx: sha256 .* is not the manifest.s"):
        stages.register(PARAMS, register_inputs(trained, evaluated), evaluated / "r.json")


def passed_map50(folder: Path) -> float:
    report = json.loads((folder / "evaluate" / stages.EVALUATION).read_text())
    return float(report["pytorch"]["map50"])
