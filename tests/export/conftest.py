"""Export fixtures: three small models really trained (RT-DETRv2, YOLO, an image head) on the
demo dataset once per session, and the paths an export needs.

A random-init RT-DETRv2 is no model to check exports with: its encoder scores every position
the same, so its top-k query selection is decided by tie order, which PyTorch and ONNX Runtime
break differently. A couple of epochs of training is enough to end that."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from modelyard.config import Settings
from modelyard.db import connection, stores
from modelyard.export.config import ExportParams, ParityParams
from modelyard.export.run import ExportPaths
from modelyard.export.samples import SamplePaths
from modelyard.storage import ObjectStore
from modelyard.tracking import Tracker
from modelyard.training.run import TrainOptions, TrainPaths, train
from tests.conftest import ENV_KEYS, TEMPLATE, ingest_demo
from tests.training.conftest import ROOT, prepare, tiny_params

ARCHITECTURES = {
    "rt-detrv2-s": {"epochs": 12, "lr": 2e-3},
    "yolo11n": {"epochs": 3, "lr": 0.002},
    "resnet18-binary": {"epochs": 3, "batch_size": 16, "lr": 3e-4},
}


@dataclass(frozen=True, kw_only=True)
class Trained:
    samples: SamplePaths
    models: dict[str, Path]  # architecture -> train's output folder
    home: Path


@pytest.fixture(scope="session")
def trained(
    pg_admin_url: str, demo_coco: Path, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    root = tmp_path_factory.mktemp("export")
    name = f"x_{uuid.uuid4().hex[:12]}"
    connection.ensure_database(pg_admin_url, name, template=TEMPLATE)
    url = connection.with_database(pg_admin_url, name)
    with pytest.MonkeyPatch.context() as env, connection.connect(url) as conn:
        env.setenv("MODELYARD_HOME", str(root / "home"))
        dataset = ingest_demo(conn, ObjectStore(str(root / "store")), demo_coco)
        layouts = prepare(conn, ObjectStore(str(root / "store")), dataset, root)
        uri = stores.mlflow_tracking_uri(Settings.from_env({"DATABASE_URL": url}))
        tracker = Tracker(uri, root / "mlruns")
        models = {}
        for arch, overrides in ARCHITECTURES.items():
            paths = TrainPaths(
                converted=layouts["converted"], snapshot=layouts["snapshot"],
                out=root / arch, checkpoints=root / f"{arch}-checkpoints", repo=ROOT,
            )  # fmt: skip
            params = tiny_params(architecture=arch, **overrides)
            train(conn, tracker, params, paths, TrainOptions(progress_bar=False))
            models[arch] = paths.out
    samples = SamplePaths(converted=layouts["converted"], snapshot=layouts["snapshot"])
    return Trained(samples=samples, models=models, home=root / "home")


def export_paths(trained: Trained, arch: str, folder: Path, name: str) -> ExportPaths:
    return ExportPaths(
        model=trained.models[arch],
        samples=trained.samples,
        out=folder / name,
        metrics=folder / f"{name}.json",
    )


# few timed runs; detections matched from a low score up, as these small models are unsure
FAST = ExportParams(latency_runs=3, parity=ParityParams(score_threshold=0.1))


def run_stage(
    trained: Trained, arch: str, fmt: str, folder: Path, params: Path
) -> subprocess.CompletedProcess[str]:
    """``pipelines/export.py`` in its own process, as the DVC stage runs it."""
    paths = export_paths(trained, arch, folder, fmt)
    command = [
        sys.executable, str(ROOT / "pipelines" / "export.py"), "--format", fmt,
        "--model", str(paths.model), "--converted", str(trained.samples.converted),
        "--snapshot", str(trained.samples.snapshot), "--out", str(paths.out),
        "--metrics", str(paths.metrics), "--params", str(params),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["MODELYARD_HOME"] = str(trained.home)
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def params_file(folder: Path) -> Path:
    """A params.yaml with FAST's export section, for the stage's own process."""
    path = folder / "params.yaml"
    parity = {"score_threshold": FAST.parity.score_threshold}
    section = {"latency_runs": FAST.latency_runs, "parity": parity}
    path.write_text(yaml.safe_dump({"export": section}), encoding="utf-8")
    return path
