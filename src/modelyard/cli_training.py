"""``modelyard train`` and ``modelyard ui``: training outside ``dvc repro`` (to resume a
killed run, or to try a params file) and the MLflow UI over the project's tracking store."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from modelyard.config import Settings, load_params
from modelyard.db import stores
from modelyard.tracking import ARTIFACT_ROOT, UI_ENVIRONMENT, ui_command


def train(
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    params: Annotated[Path, typer.Option(help="Params file.")] = Path("params.yaml"),
    converted: Annotated[Path, typer.Option(help="convert's output.")] = Path("data/converted"),
    snapshot: Annotated[Path, typer.Option(help="Snapshot folder.")] = Path("data/snapshot"),
    out: Annotated[Path, typer.Option(help="Folder for the model.")] = Path("models/train"),
    checkpoints: Annotated[Path, typer.Option(help="Checkpoints.")] = Path("models/checkpoints"),
    metrics: Annotated[Path, typer.Option(help="Metrics JSON.")] = Path("reports/train.json"),
    tuned: Annotated[Path, typer.Option(help="Tuned values (applied when present).")] = Path(
        "models/tune/best_params.json"
    ),
) -> None:
    """Train the model params.yaml `train` names (the paths default to dvc.yaml's)."""
    from modelyard import stages  # torch and the rest: only when a command runs
    from modelyard.training.run import TrainPaths

    paths = TrainPaths(
        converted=converted, snapshot=snapshot, out=out, checkpoints=checkpoints, repo=Path.cwd()
    )
    outcome = stages.train(load_params(params), paths, metrics, resume=resume, tuned=tuned)
    typer.echo(
        f"trained {outcome.model}: best {outcome.best_score:.4f}; "
        f"MLflow run {outcome.run_id}, job {outcome.job_id}"
    )


def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    artifacts: Annotated[Path, typer.Option(help="Artifact root.")] = ARTIFACT_ROOT,
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the project's tracking store (Ctrl-C stops it)."""
    uri = stores.mlflow_tracking_uri(Settings.from_env())
    command = ui_command(uri, artifacts, host="127.0.0.1", port=port)
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    # its own process group, stopped whole however this command ends (Ctrl-C, SIGTERM, error)
    server = subprocess.Popen(command, env={**os.environ, **UI_ENVIRONMENT}, start_new_session=True)  # noqa: S603
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(server)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tune(
    params: Annotated[Path, typer.Option(help="Params file.")] = Path("params.yaml"),
    trials: Annotated[
        int | None, typer.Option(help="Trials for this worker (default: tune.trials).")
    ] = None,
    worker: Annotated[str | None, typer.Option(help="Worker name (default host-pid).")] = None,
    converted: Annotated[Path, typer.Option(help="convert's output.")] = Path("data/converted"),
    snapshot: Annotated[Path, typer.Option(help="Snapshot folder.")] = Path("data/snapshot"),
    best: Annotated[Path, typer.Option(help="Best values JSON.")] = Path(
        "models/tune/best_params.json"
    ),
) -> None:
    """Join the Optuna study params.yaml `tune` names and run trials; any number of workers,
    on any machines sharing the database, cooperate on one study."""
    loaded = load_params(params)
    if trials is not None:
        loaded = {**loaded, "tune": {**loaded.get("tune", {}), "trials": trials}}
    from modelyard import stages  # torch and the rest: only when a command runs
    from modelyard.training.run import TrainPaths

    paths = TrainPaths(
        converted=converted, snapshot=snapshot, out=Path(), checkpoints=Path(), repo=Path.cwd()
    )
    name = worker or f"{socket.gethostname()}-{os.getpid()}"
    outcome = stages.tune(loaded, paths, best, worker=name)
    typer.echo(
        f"study {outcome.study}: {outcome.trials} trials in all; best {outcome.best_value} "
        f"with {outcome.best_params} -> {best}"
    )
