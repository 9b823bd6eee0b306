"""Registry fixtures: a trained model of the session exported, evaluated and gated in a
folder, ready to register; the RegisterInputs that point at it; the session's detector
registered (gate failed, gate passed) and, per test, a Release: a database and bucket of its
own copied from the trained ones, and a registered model of its own."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from mlflow import MlflowClient

from modelyard import stages
from modelyard.db import connection
from modelyard.files import write_json
from modelyard.registry.register import RegisterInputs, register
from modelyard.tracking import Tracker
from tests.conftest import ENV_KEYS, MODELYARD
from tests.evaluation.conftest import exported_and_evaluated
from tests.trained import Trained

ROOT = Path(__file__).resolve().parents[2]

ARCH = "yolo11n"
PARAMS = {"base": {"seed": 0, "policy_id": "demo-policy", "dataset": "demo"}}


def evaluate_into(trained: Trained, folder: Path) -> Path:
    """``ARCH`` exported to ONNX and evaluated into ``folder``, with its train report."""
    result = exported_and_evaluated(trained, ARCH, folder)
    write_json(folder / "evaluate" / stages.EVALUATION, result.report)
    assert result.calibration is not None
    write_json(folder / "evaluate" / stages.CALIBRATION, result.calibration.as_dict())
    write_json(
        folder / "train.json", {"mlflow_run_id": trained.runs[ARCH], "job_id": trained.jobs[ARCH]}
    )
    return folder


def gate(trained: Trained, folder: Path, min_map50: float) -> dict[str, Any]:
    """The gate stage over ``folder`` with one bound on mAP50 (0.999 fails, 0 passes)."""
    gates_file = folder / "gates.yaml"
    gates_file.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "detect": {"overall": {"map50": {"min": min_map50}}, "parity": {"onnx": 0.01}},
            }
        )
    )
    paths = stages.GatePaths(
        evaluation=folder / "evaluate",
        gates=gates_file,
        train_report=folder / "train.json",
        snapshot=trained.samples.snapshot / "snapshot.json",
        report=folder / "gate.json",
        card=folder / "model_card.md",
    )
    return stages.gate(PARAMS, paths, ["gate"])


def register_inputs(trained: Trained, folder: Path) -> RegisterInputs:
    return RegisterInputs(
        model=trained.models[ARCH],
        exports=folder / "export",
        evaluation=folder / "evaluate",
        gate_report=folder / "gate.json",
        card=folder / "model_card.md",
        train_report=folder / "train.json",
        snapshot=trained.samples.snapshot / "snapshot.json",
    )


@dataclass(frozen=True)
class Registered:
    passed: Any  # ModelVersion whose gate passed
    failed: Any  # ModelVersion whose gate failed


@pytest.fixture(scope="session")
def registered(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """The session's detector, gated twice (fail, pass) and registered as ``bridge-detect``."""
    folder = evaluate_into(trained, tmp_path_factory.mktemp("bridge"))
    tracker = Tracker(trained.tracking_uri, trained.mlruns)
    versions = {}
    with pytest.MonkeyPatch.context() as env, connection.connect(trained.database_url) as conn:
        env.setenv("DATABASE_URL", trained.database_url)
        env.chdir(folder)
        for status, bound in (("FAIL", 0.999), ("PASS", 0.0)):
            assert gate(trained, folder, bound)["status"] == status
            done = register(conn, tracker, "bridge", register_inputs(trained, folder))
            versions[status] = tracker.client.get_model_version(done.name, done.version)
    return Registered(passed=versions["PASS"], failed=versions["FAIL"])


@dataclass
class Release:
    """One test's world: a database and bucket of its own, a model name of its own."""

    url: str
    env: dict[str, str]
    client: MlflowClient
    model: str
    store: Path
    registered: Registered

    def new_version(self, passed: bool = True) -> str:
        base = self.registered.passed if passed else self.registered.failed
        made = self.client.create_model_version(
            self.model, base.source, run_id=base.run_id, tags=base.tags
        )
        return str(made.version)

    def cli(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*MODELYARD, *args],
            env=self.env | env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*MODELYARD, *args],
            env=self.env | env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with connection.connect(self.url) as conn:
            return conn.execute(query, params).fetchall()

    def bundles(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT * FROM verify_ai_model_bundles WHERE mlflow_model_name = %s "
            "ORDER BY bundle_version",
            (self.model,),
        )

    def events(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM verify_ai_bundle_events ORDER BY id")


@pytest.fixture
def release(
    trained: Trained, registered: Registered, pg_admin_url: str, tmp_path: Path
) -> Iterator[Release]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    template = urlparse(trained.database_url).path.lstrip("/")
    connection.ensure_database(pg_admin_url, name, template=template)
    url = connection.with_database(pg_admin_url, name)
    store = tmp_path / "store"
    shutil.copytree(trained.store, store)
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env |= {
        "DATABASE_URL": url,
        "MODELYARD_HOME": str(trained.home),
        "MODELYARD_STORAGE_URL": str(store),
        "MLFLOW_TRACKING_URI": trained.tracking_uri,
    }
    client = MlflowClient(tracking_uri=trained.tracking_uri)
    model = f"m{uuid.uuid4().hex[:10]}-detect"
    client.create_registered_model(model)
    env_args = Release(
        url=url, env=env, client=client, model=model, store=store, registered=registered
    )
    yield env_args
    connection.drop_database(pg_admin_url, name)


def active(release: Release) -> list[dict[str, Any]]:
    return [b for b in release.bundles() if b["is_active"]]


def aliases(release: Release) -> dict[str, str]:
    found = release.client.get_registered_model(release.model).aliases
    return {alias: str(version) for alias, version in found.items()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
