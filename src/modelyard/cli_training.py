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
from modelyard.datasets.corpus import Corpus
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


predictor_app = typer.Typer(
    help="The per-codec VMAF predictor: canonical-6 corpora, LOSO gate, ONNX, cards.",
    no_args_is_help=True,
)


@predictor_app.command("train")
def predictor_train(
    codec: Annotated[
        list[str] | None, typer.Option(help="Only this codec (repeatable); default: every one.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs per fit (default: predictor.epochs).")
    ] = None,
    report_out: Annotated[
        Path | None, typer.Option(help="report.json path (default: predictor.reports).")
    ] = None,
    synthetic_smoke: Annotated[
        bool, typer.Option(help="Run end to end on generated rows; never PASS.")
    ] = False,
    dataset: Annotated[
        str | None,
        typer.Option(help="Train on a dataset's corpus rows (ingest corpus) instead of files."),
    ] = None,
    params: Annotated[Path, typer.Option(help="Params file.")] = Path("params.yaml"),
    gates: Annotated[Path, typer.Option(help="Acceptance gates.")] = Path("acceptance_gates.yaml"),
) -> None:
    """LOSO-train and gate a predictor per codec of the corpus CORPUS or CORPUS_ROOTS name;
    retrain passing codecs on every row and write their ONNX; cards and report.json.
    Exit 0 only when every codec passes (2: some did not)."""
    import sys

    from modelyard import stages  # torch and the rest: only when a command runs
    from modelyard.evaluation.predictor.run import PredictorRequest
    from modelyard.evaluation.predictor.run import run as run_predictor
    from modelyard.training.predictor import config

    if dataset and synthetic_smoke:
        raise typer.BadParameter("--synthetic-smoke generates its rows; drop --dataset")
    rows = _dataset_corpus(dataset) if dataset else None
    request = PredictorRequest(
        params=config.load(load_params(params).get("predictor")),
        gates=gates,
        environ=dict(os.environ),
        codecs=tuple(codec or ()),
        epochs=epochs,
        report_out=report_out,
        synthetic_smoke=synthetic_smoke,
        argv=tuple(sys.argv),
        corpus=rows,
    )
    tracker = stages.tracker()
    outcome = run_predictor(request, tracker)
    typer.echo("codec status mean_plcc plcc_spread n_rows n_sources")
    for line in outcome.lines:
        typer.echo(line)
    for entry in outcome.report["codecs"]:
        for reason in entry["failure_reasons"]:
            typer.echo(f"  {entry['codec']}: {reason}")
    s = outcome.report["summary"]
    typer.echo(
        f"{s['n_pass']} PASS, {s['n_fail']} FAIL, {s['n_insufficient']} insufficient-sources, "
        f"{s['n_missing_rows']} missing-rows; report {outcome.report_path}, log {outcome.log_path}"
    )
    from modelyard.registry import predictor as predictor_registry

    for done in predictor_registry.register(tracker.client, outcome.report):
        state = "registered" if done["created"] == "true" else "already registered as"
        typer.echo(f"{done['codec']}: {state} {done['name']} version {done['version']} (candidate)")
    raise typer.Exit(outcome.exit_code)


def _dataset_corpus(ref: str) -> Corpus:
    from modelyard.cli_common import database
    from modelyard.datasets.ingest import canonical6
    from modelyard.db import datasets as datasets_db

    with database() as conn:
        return canonical6.corpus_of(conn, datasets_db.find(conn, ref))


@predictor_app.command("discover")
def predictor_discover(
    params: Annotated[Path, typer.Option(help="Params file.")] = Path("params.yaml"),
) -> None:
    """The corpus files CORPUS or CORPUS_ROOTS name, their rows per codec and source, and
    every rejected row (file:line, field, reason, fix). Exit 3 when no row is usable."""
    from modelyard.datasets import corpus
    from modelyard.training.predictor import config

    known = config.load(load_params(params).get("predictor")).codecs
    found = corpus.discover(os.environ)
    read = corpus.read(found.files, known)
    for root in found.missing_roots:
        typer.echo(f"missing root (skipped): {root}")
    for f in read.files:
        typer.echo(
            f"{f['path']}: {f['rows']} rows, {f['rejected']} rejected, sha256 {f['sha256'][:12]}"
        )
    for name in read.codecs():
        rows = read.of_codec(name)
        typer.echo(f"{name}: {len(rows)} rows, {len({r.src for r in rows})} distinct sources")
    for r in read.rejections[:20]:
        typer.echo(f"rejected {r.record}: {r.field}: {r.reason} (fix: {r.fix})")
    if len(read.rejections) > 20:
        typer.echo(f"... and {len(read.rejections) - 20} more rejected rows")
    if read.failed_encodes:
        typer.echo(f"{read.failed_encodes} failed encode(s) (exit_status != 0) dropped")
    if not read.rows:
        typer.echo("no usable rows: set CORPUS=file.jsonl or CORPUS_ROOTS='dir ...'")
        raise typer.Exit(3)


@predictor_app.command("corpus")
def predictor_corpus(
    out: Annotated[Path, typer.Option(help="JSONL file to write.")] = Path(
        "data/predictor/corpus.jsonl"
    ),
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
) -> None:
    """Generate the demo corpus: 9 sources of libx265 (learnable), 9 of libvvenc (noisy) and
    4 of libsvtav1 (too few for 5 LOSO folds), 8 cq steps x 12 frames each."""
    from modelyard.datasets import synthetic_corpus

    summary = synthetic_corpus.generate(out, synthetic_corpus.PRESET, seed=seed)
    for name, c in summary["codecs"].items():
        typer.echo(
            f"{name}: {c['rows']} rows, {c['sources']} sources, noise {c['noise']} VMAF, "
            f"source effect {c['source_effect']} VMAF"
        )
    typer.echo(f"wrote {out}")
