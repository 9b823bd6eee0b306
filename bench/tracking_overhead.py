"""Tracking overhead: the same training epochs with and without modelyard's tracking, in one
run, and training images/s for each architecture.

"Tracked" is ``training.run.train`` as the ``train`` stage runs it: a job row with progress
lines, an MLflow run on PostgreSQL with the lineage tags, params, per-epoch metrics, the best
checkpoint and class map as artifacts, and the provenance rows. "Bare" is the architecture's
own fit with the same request, seed and data, and no hooks. After an untimed warm-up epoch
the two alternate (bare, tracked, tracked, bare, ...) so that drift in the machine's speed
falls on both; the figure to read is the median of each. As the machine's speed moves by a
few per cent from one training to the next, the tracking work is also timed directly: all of
``train`` outside the architecture's fit, plus the tracking calls the epoch hooks make inside
it.

Data: the demo dataset (300 synthetic 192 px photos) through the real snapshot, download and
convert, on an embedded PostgreSQL in a temporary folder. Settings: params.yaml's ``train``
section, except the epochs. Target: overhead under 5 %.

    python bench/tracking_overhead.py [--overhead rt-detrv2-s,resnet18-binary] [--epochs 2]
        [--repeats 2] [--speed yolo11n,...] [--speed-epochs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from modelyard.config import Settings, load_params, section
from modelyard.datasets import convert, download, snapshot, splits, synthetic
from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.datasets.records import SPLITS
from modelyard.db import connection, jobs, migrate, stores
from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.storage import ObjectStore
from modelyard.tracking import TrackedRun, Tracker
from modelyard.training import architectures, fit, lineage
from modelyard.training.config import TrainParams, with_overrides
from modelyard.training.detectors.coco import Layout
from modelyard.training.run import TrainOptions, TrainPaths, train

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["car", "person", "sign"]
STRATIFY = ("class", "stream", "road_type", "scenario")
SPEED = (
    "rt-detrv2-s",
    "yolo11n",
    "resnet18-binary",
    "mobilenet_v3_small-binary",
    "resnet18-rating",
    "mobilenet_v3_small-rating",
)


@dataclass
class Stopwatch:
    """Seconds spent inside the wrapped functions (the tracking calls), summed."""

    seconds: float = 0.0
    patched: list[tuple[object, str, Any]] = field(default_factory=list)

    def wrap(self, owner: object, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        self.patched.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self.patched):
            setattr(owner, name, original)


@contextmanager
def tracking_time() -> Iterator[Stopwatch]:
    """Time every call that tracking adds to a training: MLflow, the job row, lineage tags."""
    watch = Stopwatch()
    for name in ("log_params", "log_metrics", "set_tags", "log_artifacts", "finish"):
        watch.wrap(TrackedRun, name)
    watch.wrap(Tracker, "start_run")
    for name in ("create", "start", "progress", "succeed"):
        watch.wrap(jobs, name)
    watch.wrap(lineage, "lineage_tags")
    try:
        yield watch
    finally:
        watch.restore()


def prepare(work: Path, conn: Connection) -> dict[str, Path]:
    """The demo dataset: generated, ingested, split, snapshot, downloaded and converted."""
    store = ObjectStore(str(work / "store"))
    source = synthetic.generate(work / "demo", synthetic.DemoConfig())
    ds = datasets_db.create(conn, policy_id="bench", name="demo", classes=CLASSES)
    report = IngestReport(dataset="demo", source_format="coco", source_path=str(source))
    run_ingest(conn, store, ds, read_source("coco", source), report)
    splits.split_dataset(conn, ds, splits.SplitRequest(ratios=(0.7, 0.15, 0.15), seed=0), STRATIFY)
    snap = snapshot.build(conn, ds, snapshot.SnapshotParams())
    snapshot.write(snap, work / "snapshot")
    manifests = {}
    for split in SPLITS:
        frame = snapshot.read_manifest(work / "snapshot" / f"manifest_{split}.csv")
        manifests[split] = download.download(
            frame, store, work / "images", download.DownloadReport()
        )
    convert.convert(manifests, CLASSES, work / "images", work / "converted")
    return {"snapshot": work / "snapshot", "converted": work / "converted"}


def paths_for(data: dict[str, Path], work: Path) -> TrainPaths:
    shutil.rmtree(work, ignore_errors=True)
    return TrainPaths(
        converted=data["converted"],
        snapshot=data["snapshot"],
        out=work / "model",
        checkpoints=work / "checkpoints",
        repo=ROOT,
    )


def bare(params: TrainParams, paths: TrainPaths, hooks: list[Any] | None = None) -> float:
    """The architecture's own fit, no tracking; wall seconds."""
    arch = architectures.get(params.architecture)
    request = fit.FitRequest(
        params=params,
        classes=Layout(root=paths.converted).classes(),
        converted=paths.converted,
        snapshot=paths.snapshot,
        checkpoints=paths.checkpoints,
        monitor=arch.monitor,
        hooks=hooks or [],
        progress_bar=False,
    )
    start = time.perf_counter()
    L.seed_everything(0, workers=True, verbose=False)
    arch.fit(request)
    return time.perf_counter() - start


@dataclass(frozen=True)
class Tracked:
    wall: float
    work: float  # tracking's own work: train() around the fit, and the hooks' calls inside it


def tracked(conn: Connection, tracker: Tracker, params: TrainParams, paths: TrainPaths) -> Tracked:
    """``train`` as the stage runs it, its fit timed apart."""
    arch = architectures.get(params.architecture)
    inside: dict[str, float] = {}

    def timed_fit(request: fit.FitRequest) -> fit.FitResult:
        calls, start = watch.seconds, time.perf_counter()
        try:
            return arch.fit(request)
        finally:
            inside.update(fit=time.perf_counter() - start, calls=watch.seconds - calls)

    original = architectures.get
    architectures.get = lambda name: dataclasses.replace(arch, fit=timed_fit)
    try:
        with tracking_time() as watch:
            start = time.perf_counter()
            train(conn, tracker, params, paths, TrainOptions(seed=0, progress_bar=False))
            wall = time.perf_counter() - start
    finally:
        architectures.get = original
    return Tracked(wall=wall, work=wall - inside["fit"] + inside["calls"])


def overhead(
    conn: Connection,
    tracker: Tracker,
    params: TrainParams,
    data: dict[str, Path],
    work: Path,
    repeats: int,
) -> dict[str, float]:
    walls: dict[str, list[float]] = {"bare": [], "tracked": []}
    own: list[float] = []
    order = [("bare", "tracked"), ("tracked", "bare")]
    warm = with_overrides(params, {"epochs": 1}, "bench")
    bare(warm, paths_for(data, work / "warm-up"))  # first-call costs fall on neither side
    for rep in range(repeats):
        for mode in order[rep % 2]:
            paths = paths_for(data, work / f"{params.architecture}-{mode}")
            if mode == "bare":
                walls["bare"].append(bare(params, paths))
            else:
                outcome = tracked(conn, tracker, params, paths)
                walls["tracked"].append(outcome.wall)
                own.append(outcome.work)
            print(f"    {mode:8} repeat {rep + 1}: {walls[mode][-1]:7.1f} s", flush=True)
    return {
        "bare": statistics.median(walls["bare"]),
        "tracked": statistics.median(walls["tracked"]),
        "work": statistics.median(own),
    }


def speed(params: TrainParams, data: dict[str, Path], work: Path) -> tuple[float, float]:
    """(train images/s, epoch seconds): the median epoch after the first (which warms up),
    training and its validation pass together, untracked."""
    ends: list[float] = []

    def mark(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        ends.append(time.perf_counter())

    bare(params, paths_for(data, work / f"speed-{params.architecture}"), hooks=[mark])
    epoch = statistics.median(b - a for a, b in itertools.pairwise(ends))
    coco = json.loads(Layout(root=data["converted"]).split_file("train").read_text("utf-8"))
    images = len(coco["images"])
    return images / epoch, epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead", default="rt-detrv2-s,resnet18-binary")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each overhead training")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--speed", default=",".join(SPEED))
    parser.add_argument("--speed-epochs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "modelyard", "ultralytics", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    base = section(load_params(ROOT / "params.yaml"), "train", TrainParams)
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    work.chmod(0o755)
    cwd = Path.cwd()
    os.chdir(work)  # ultralytics and Lightning write beside the working directory
    try:
        from pgserver.postgres_server import get_server

        server = get_server(work / "pg", cleanup_mode="stop")
        admin = str(server.get_uri())
        connection.ensure_database(admin, "bench")
        conn = connection.connect(connection.with_database(admin, "bench"))
        migrate.migrate(conn, migrate.discover(migrate.default_migrations_dir()))
        settings = Settings.from_env({"DATABASE_URL": connection.with_database(admin, "bench")})
        tracker = Tracker(stores.mlflow_tracking_uri(settings), work / "mlruns").ready()
        t0 = time.perf_counter()
        data = prepare(work, conn)
        print(
            f"demo dataset prepared in {time.perf_counter() - t0:.1f} s; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"image size {base.image_size}, batch {base.batch_size}, {base.precision}"
        )
        rows: dict[str, dict[str, float]] = {}
        for name in filter(None, args.overhead.split(",")):
            params = with_overrides(base, {"architecture": name, "epochs": args.epochs}, "bench")
            print(f"  {name}: {args.epochs} epochs, bare and tracked, {args.repeats} each")
            rows[name] = overhead(conn, tracker, params, data, work / "runs", args.repeats)
        print(f"\n{'overhead':28}{'bare s':>9}{'tracked s':>11}{'ratio':>8}{'tracking work':>18}")
        for name, r in rows.items():
            share = r["work"] / r["bare"]
            print(
                f"{name:28}{r['bare']:>9.1f}{r['tracked']:>11.1f}"
                f"{r['tracked'] / r['bare']:>8.3f}{r['work']:>9.2f} s ({share:.1%})"
            )
        print(
            "target: overhead under 5 %. ratio: medians of wall time, as noisy as the machine; "
            "tracking work: measured\ndirectly (train() outside its fit, and the tracking "
            "calls the epoch hooks make inside it), as a share of bare"
        )
        print(f"\n{'architecture':28}{'train img/s':>12}{'epoch s':>9}")
        for name in filter(None, args.speed.split(",")):
            params = with_overrides(
                base, {"architecture": name, "epochs": args.speed_epochs}, "bench"
            )
            rate, epoch = speed(params, data, work / "runs")
            print(f"{name:28}{rate:>12.1f}{epoch:>9.1f}", flush=True)
        print("(an epoch: its training pass and its validation pass; median after the first)")
        conn.close()
        server.cleanup()
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
