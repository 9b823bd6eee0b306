"""The session's trained models: three small models really trained (RT-DETRv2, YOLO, an image
head) on the demo dataset once per session, shared by the export, evaluation and registry
tests (a pytest plugin, so that there is one fixture and one training for all of them).

A random-init RT-DETRv2 is no model to check exports with: its encoder scores every position
the same, so its top-k query selection is decided by tie order, which PyTorch and ONNX Runtime
break differently. A couple of epochs of training is enough to end that."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelyard.config import Settings
from modelyard.db import connection, stores
from modelyard.export.samples import SamplePaths
from modelyard.storage import ObjectStore
from modelyard.tracking import Tracker
from modelyard.training.run import TrainOptions, TrainPaths, train
from tests.conftest import TEMPLATE, ingest_demo
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
    database_url: str  # the database the models were trained against (runs, jobs, dataset)
    tracking_uri: str
    mlruns: Path
    store: Path  # the object store holding the dataset's images
    runs: dict[str, str] = field(default_factory=dict)  # architecture -> MLflow run id
    jobs: dict[str, str] = field(default_factory=dict)  # architecture -> job id


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
        models, runs, jobs = {}, {}, {}
        for arch, overrides in ARCHITECTURES.items():
            paths = TrainPaths(
                converted=layouts["converted"], snapshot=layouts["snapshot"],
                out=root / arch, checkpoints=root / f"{arch}-checkpoints", repo=ROOT,
            )  # fmt: skip
            params = tiny_params(architecture=arch, **overrides)
            outcome = train(conn, tracker, params, paths, TrainOptions(progress_bar=False))
            models[arch] = paths.out
            runs[arch], jobs[arch] = outcome.run_id, str(outcome.job_id)
    samples = SamplePaths(converted=layouts["converted"], snapshot=layouts["snapshot"])
    return Trained(
        samples=samples,
        models=models,
        home=root / "home",
        database_url=url,
        tracking_uri=uri,
        mlruns=root / "mlruns",
        store=root / "store",
        runs=runs,
        jobs=jobs,
    )
