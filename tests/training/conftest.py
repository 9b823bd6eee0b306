"""Training fixtures: the small demo dataset taken through snapshot, download and convert
(the real functions), and a tracker on the test server's ``mlflow`` database."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import Settings
from modelyard.datasets import convert, download, snapshot
from modelyard.datasets.records import SPLITS
from modelyard.db import stores
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore
from modelyard.tracking import Tracker
from modelyard.training.config import RtDetrParams, TrainParams
from modelyard.training.run import TrainPaths

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prepared(
    tmp_path: Path, conn: Connection, store: ObjectStore, demo_dataset: Dataset
) -> dict[str, Path]:
    """snapshot -> download -> convert of the demo dataset, as the DVC stages would."""
    return prepare(conn, store, demo_dataset, tmp_path)


def prepare(
    conn: Connection, store: ObjectStore, dataset: Dataset, folder: Path
) -> dict[str, Path]:
    snap = snapshot.build(conn, dataset, snapshot.SnapshotParams())
    snapshot.write(snap, folder / "snapshot")
    manifests = {}
    for split in SPLITS:
        frame = snapshot.read_manifest(folder / "snapshot" / f"manifest_{split}.csv")
        report = download.DownloadReport()
        manifests[split] = download.download(frame, store, folder / "images", report)
    convert.convert(manifests, dataset.classes, folder / "images", folder / "converted")
    return {"snapshot": folder / "snapshot", "converted": folder / "converted"}


@pytest.fixture
def tracker(db_url: str, tmp_path: Path) -> Tracker:
    uri = stores.mlflow_tracking_uri(Settings.from_env({"DATABASE_URL": db_url}))
    return Tracker(uri, tmp_path / "mlruns")


def tiny_params(**overrides: object) -> TrainParams:
    """An RT-DETRv2 small enough to train a few epochs on 64 px images in seconds."""
    values: dict[str, object] = {
        "epochs": 2,
        "batch_size": 8,
        "image_size": 64,
        "lr": 1e-3,
        "precision": "32-true",
        "experiment": "tests",
        "rtdetr": RtDetrParams(num_queries=20, num_denoising=0, d_model=64, ffn_dim=128),
    }
    values.update(overrides)
    return TrainParams(**values)  # type: ignore[arg-type]


def train_paths(prepared: dict[str, Path], tmp_path: Path) -> TrainPaths:
    """The prepared layouts in, the model and checkpoints under ``tmp_path``."""
    return TrainPaths(
        converted=prepared["converted"],
        snapshot=prepared["snapshot"],
        out=tmp_path / "model",
        checkpoints=tmp_path / "checkpoints",
        repo=ROOT,
    )
