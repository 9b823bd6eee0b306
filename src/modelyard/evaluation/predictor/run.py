"""One predictor run: discovery -> corpus checks -> per codec: LOSO -> gate -> (passing codecs
only) retrain on every row -> ONNX with parity against PyTorch -> card; then report.json.

A codec that does not pass keeps whatever ONNX an earlier run left: nothing is written to its
path. A passing codec's ONNX is written beside its final path, checked against the PyTorch
model on every row of the codec, and only then renamed into place. ``synthetic_smoke`` runs
the same steps on generated rows into a ``smoke/`` folder beside the report; its verdicts are
never PASS. Exit status 0 only when every codec passes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.datasets import corpus as corpus_mod
from modelyard.datasets import synthetic_corpus
from modelyard.datasets.corpus import Corpus, Discovery, EncodeRow
from modelyard.errors import ConfigError, IngestError
from modelyard.evaluation.predictor import card, gate, report
from modelyard.evaluation.predictor.gate import PASS, PredictorGate, Verdict
from modelyard.export import onnx as onnx_export
from modelyard.export.config import Tolerance
from modelyard.export.manifest import sha256_path
from modelyard.export.parity import ParityResult, value_parity
from modelyard.files import write_json
from modelyard.quality import EXIT_GATE_FAILED
from modelyard.tracking import TrackedRun, Tracker
from modelyard.training.lineage import git_state
from modelyard.training.predictor import features, loso, model
from modelyard.training.predictor.config import PredictorParams

log = logging.getLogger(__name__)

EXPERIMENT = "predictor"
ENTRYPOINT = "modelyard predictor train"
SMOKE_SPECS = tuple(
    synthetic_corpus.CodecSpec(
        name=s.name, sources=s.sources, noise=s.noise, source_effect=s.source_effect, frames=4
    )
    for s in synthetic_corpus.PRESET
)


@dataclass(frozen=True, kw_only=True)
class PredictorRequest:
    params: PredictorParams
    gates: Path  # acceptance_gates.yaml
    environ: Mapping[str, str]  # CORPUS, CORPUS_ROOTS, ALLOW_EMPTY
    codecs: tuple[str, ...] = ()  # empty: every codec the corpus has
    epochs: int | None = None
    report_out: Path | None = None
    synthetic_smoke: bool = False
    argv: tuple[str, ...] = ()
    corpus: Corpus | None = None  # rows read elsewhere (a dataset); then nothing is discovered


@dataclass(kw_only=True)
class Outcome:
    report: dict[str, Any]
    report_path: Path
    log_path: Path
    exit_code: int
    lines: list[str] = field(default_factory=list)  # the one-line-per-codec table


def run(request: PredictorRequest, tracker: Tracker | None) -> Outcome:
    started = datetime.now(UTC)
    report_path = request.report_out or request.params.reports_dir / "report.json"
    log_path = report_path.parent / f"train_{started:%Y%m%dT%H%M%SZ}.log"
    with _logging_to(log_path):
        return _run(request, tracker, started, report_path, log_path)


def _run(
    request: PredictorRequest,
    tracker: Tracker | None,
    started: datetime,
    report_path: Path,
    log_path: Path,
) -> Outcome:
    params, environ = request.params, request.environ
    the_gate = gate.load(request.gates)
    models_dir = report_path.parent / "smoke" if request.synthetic_smoke else params.models_dir
    found = _discover(request, report_path.parent)
    corpus = request.corpus or corpus_mod.read(found.files, params.codecs)
    allow_empty = environ.get("ALLOW_EMPTY", "") == "1"
    log.info(
        "corpus: %d file(s), %d row(s), %d rejected, %d failed encode(s) dropped",
        len(found.files),
        len(corpus.rows),
        len(corpus.rejections),
        corpus.failed_encodes,
    )
    if not corpus.rows and not allow_empty:
        if request.corpus is not None:
            where = corpus.files[0]["path"] if corpus.files else "the dataset"
            raise IngestError(
                f"{where}: no corpus rows; load some with "
                "`modelyard ingest corpus FILE --dataset NAME`"
            )
        raise IngestError(_no_rows(found, corpus))
    rejections = _write_rejections(corpus, report_path.parent)
    codecs = _codecs(request, corpus, allow_empty)
    context = {
        "report": report_path.as_posix(),
        "generated_at": started.isoformat(timespec="seconds"),
        "synthetic_smoke": request.synthetic_smoke,
    }
    parent = _start(tracker, f"predictor-{started:%Y%m%dT%H%M%SZ}", None, request)
    entries, outputs = [], [] if rejections is None else [rejections]
    try:
        for codec in codecs:
            entry, written = _codec(
                codec, corpus.of_codec(codec), request, the_gate, models_dir, context, tracker,
                parent,
            )  # fmt: skip
            entries.append(entry)
            outputs += written
    except BaseException:
        if parent is not None:
            parent.finish("FAILED")
        raise
    summary = report.summary(entries)
    document: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "generated_at": context["generated_at"],
        "synthetic_smoke": request.synthetic_smoke,
        "mlflow_run_id": parent.run_id if parent else None,
        "log": log_path.as_posix(),
        "gate": the_gate.as_report(),
        "corpus": {
            "files": [str(f["path"]) for f in corpus.files],
            "roots": list(found.roots),
            "missing_roots": list(found.missing_roots),
            "rows": len(corpus.rows),
            "rejected": len(corpus.rejections),
            "failed_encodes_dropped": corpus.failed_encodes,
            "rejections": rejections.as_posix() if rejections else None,
        },
        "codecs": entries,
        "summary": summary,
        "run_provenance": _provenance(request, corpus, outputs),
    }
    report.validate(document)
    write_json(report_path, document)
    passed = bool(entries) and all(e["status"] == PASS for e in entries)
    if parent is not None:
        parent.log_metrics({f"summary.{k}": v for k, v in summary.items()}, step=0)
        parent.log_artifacts([report_path])
        parent.finish()
    lines = report.table(entries)
    log.info("codec status mean_plcc plcc_spread n_rows n_sources\n%s", "\n".join(lines))
    return Outcome(
        report=document,
        report_path=report_path,
        log_path=log_path,
        exit_code=0 if passed else EXIT_GATE_FAILED,
        lines=lines,
    )


def _codec(
    codec: str,
    rows: list[EncodeRow],
    request: PredictorRequest,
    the_gate: PredictorGate,
    models_dir: Path,
    context: dict[str, Any],
    tracker: Tracker | None,
    parent: TrackedRun | None,
) -> tuple[dict[str, Any], list[Path]]:
    params = request.params
    # one order whatever the rows came from (files in any order, or a dataset), so the same
    # rows give the same folds, batches and weights
    rows = sorted(rows, key=lambda r: (r.src, r.cq, r.frame_index))
    sources = sorted({r.src for r in rows})
    names = features.names(rows)
    folds: list[dict[str, Any]] = []
    if not rows:
        verdict = gate.missing(codec)
    elif len(sources) < the_gate.loso_fold_count:
        verdict = gate.insufficient(len(sources), the_gate)
    else:
        folds = _loso(codec, rows, names, params, request.epochs, the_gate.loso_fold_count)
        kind = "plcc_logistic" if the_gate.plcc == "logistic" else "plcc"
        verdict = gate.judge([f[kind] for f in folds], the_gate)
    cleared = verdict.status == PASS
    if request.synthetic_smoke:
        verdict = gate.smoke(verdict)
    log.info("%s: %s%s", codec, verdict.status, "".join(f"; {r}" for r in verdict.reasons))
    child = _start(tracker, f"predictor-{codec}", parent, request, codec=codec)
    onnx: dict[str, Any] | None = None
    written: list[Path] = []
    if cleared:
        try:
            onnx, verdict, written = _ship(
                codec, rows, names, request, the_gate, models_dir, verdict, child
            )
        except BaseException:
            if child is not None:
                child.finish("FAILED")
            raise
    entry = _entry(codec, rows, sources, names, folds, verdict, the_gate)
    entry |= {"onnx": onnx, "mlflow_run_id": child.run_id if child else None}
    card_path = card.write(models_dir, {**entry}, the_gate.as_report(), context)
    entry["card"] = card_path.as_posix()
    if child is not None:
        _track(child, entry, [card_path, *written])
    return entry, [*written, card_path]


def _loso(
    codec: str,
    rows: list[EncodeRow],
    names: Sequence[str],
    params: PredictorParams,
    epochs: int | None,
    k: int,
) -> list[dict[str, Any]]:
    x, y = features.matrix(rows, names), features.targets(rows)
    out = []
    for fold in loso.folds(rows, k, params.seed):
        train, val = list(fold.train), list(fold.val)
        network = model.train(x[train], y[train], params, epochs=epochs)
        s = loso.scores(model.predict(network, x[val]), y[val])
        out.append(
            {
                "fold_index": fold.index,
                "held_out_sources": list(fold.held_out),
                "plcc": round(loso.finite(s.plcc), 6),
                "plcc_logistic": round(loso.finite(s.plcc_logistic), 6),
                "logistic_fitted": s.logistic_fitted,
                "srocc": round(loso.finite(s.srocc), 6),
                "rmse": round(s.rmse, 6),
                "n_train": len(train),
                "n_val": len(val),
            }
        )
        log.info(
            "%s fold %d (held out %s): PLCC %.4f, SROCC %.4f, RMSE %.3f",
            codec,
            fold.index,
            ", ".join(fold.held_out),
            s.plcc,
            s.srocc,
            s.rmse,
        )
    return out


def _ship(
    codec: str,
    rows: list[EncodeRow],
    names: Sequence[str],
    request: PredictorRequest,
    the_gate: PredictorGate,
    models_dir: Path,
    verdict: Verdict,
    child: TrackedRun | None,
) -> tuple[dict[str, Any], Verdict, list[Path]]:
    """Retrain on every row, export, check parity; rename into place only if it holds."""
    x, y = features.matrix(rows, names), features.targets(rows)
    network = model.train(x, y, request.params, epochs=request.epochs)
    target = models_dir / f"predictor_{codec}.onnx"
    staged = target.with_name(target.name + ".staged")
    onnx_export.write_network(
        network,
        torch.from_numpy(x[:1]),
        staged,
        input_name=model.INPUT,
        outputs=(model.OUTPUT,),
        dynamic_batch=True,
    )
    parity = _parity(network, staged, x, y, rows, the_gate)
    entry: dict[str, Any] = {"path": target.as_posix(), "parity": parity.as_dict()}
    if not parity.passed:
        staged.unlink()
        log.error("%s: ONNX parity failed (%s); the previous ONNX is kept", codec, parity.reason)
        failed = Verdict(
            status=gate.FAIL,
            mean_plcc=verdict.mean_plcc,
            plcc_spread=verdict.plcc_spread,
            reasons=(*verdict.reasons, f"ONNX parity: {parity.reason}"),
        )
        return entry | {"sha256": None, "written": False}, failed, []
    os.replace(staged, target)
    sha = sha256_path(target)
    metadata = target.with_suffix(".json")
    write_json(
        metadata,
        {
            "codec": codec,
            "onnx": target.name,
            "sha256": sha,
            "input": model.INPUT,
            "output": model.OUTPUT,
            "features": list(names),
            "n_rows": len(rows),
            "sources": sorted({r.src for r in rows}),
            "epochs": request.epochs or request.params.epochs,
            "params": asdict(request.params),
            "parity": parity.as_dict(),
            "mlflow_run_id": child.run_id if child else None,
        },
    )
    log.info("%s: ONNX written to %s (sha256 %s)", codec, target, sha[:12])
    return entry | {"sha256": sha, "written": True}, verdict, [target, metadata]


def _parity(
    network: model.PredictorNetwork,
    path: Path,
    x: np.ndarray,
    y: np.ndarray,
    rows: Sequence[EncodeRow],
    the_gate: PredictorGate,
) -> ParityResult:
    runner = onnx_export.open_runtime(path, (model.OUTPUT,), threads=1)
    tol = Tolerance(
        box_iou=0.0,
        score=0.0,
        map50=0.0,
        output=the_gate.parity_output,
        metric=the_gate.parity_metric,
        tensor=float("inf"),  # one output, compared as a value below
    )
    return value_parity(
        model.predict(network, x).astype(np.float64),
        runner(x)[0].astype(np.float64),
        names=[r.record for r in rows],
        truth=[float(v) for v in y],
        task="regress",
        tol=tol,
    )


def _entry(
    codec: str,
    rows: list[EncodeRow],
    sources: list[str],
    names: Sequence[str],
    folds: list[dict[str, Any]],
    verdict: Verdict,
    the_gate: PredictorGate,
) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        return round(float(np.mean([f[key] for f in folds])), 6) if folds else None

    return {
        "codec": codec,
        "status": verdict.status,
        "mean_plcc": None if verdict.mean_plcc is None else round(verdict.mean_plcc, 6),
        "plcc_spread": None if verdict.plcc_spread is None else round(verdict.plcc_spread, 6),
        "mean_plcc_raw": mean("plcc"),
        "mean_plcc_logistic": mean("plcc_logistic"),
        "mean_srocc": mean("srocc"),
        "mean_rmse": mean("rmse"),
        "n_rows_total": len(rows),
        "n_distinct_sources": len(sources),
        "features": list(names) if rows else [],
        "failure_reasons": list(verdict.reasons),
        "folds": folds,
    }


def _discover(request: PredictorRequest, folder: Path) -> Discovery:
    if request.corpus is not None:
        return Discovery(files=(), roots=(), missing_roots=(), forced=True)
    if not request.synthetic_smoke:
        return corpus_mod.discover(request.environ)
    path = folder / "synthetic_smoke_corpus.jsonl"
    synthetic_corpus.generate(path, SMOKE_SPECS, seed=request.params.seed)
    log.warning("synthetic smoke: generated rows in %s; no verdict of this run can be PASS", path)
    return Discovery(files=(path,), roots=(), missing_roots=(), forced=True)


def _codecs(request: PredictorRequest, corpus: Corpus, allow_empty: bool) -> list[str]:
    unknown = [c for c in request.codecs if c not in request.params.codecs]
    if unknown:
        raise ConfigError(
            f"--codec {unknown[0]}: not a known codec; known: {', '.join(request.params.codecs)}"
            " (params.yaml predictor.codecs)"
        )
    if request.codecs:
        return list(request.codecs)
    if corpus.rows:
        return corpus.codecs()
    return list(request.params.codecs) if allow_empty else []


def _no_rows(found: Discovery, corpus: Corpus) -> str:
    where = (
        f"{len(found.files)} file(s) read, {len(corpus.rejections)} row(s) rejected"
        if found.files
        else "no .jsonl file found"
        + (f" under CORPUS_ROOTS ({' '.join(found.roots)})" if found.roots else "")
    )
    return (
        f"no usable corpus rows: {where}. Point CORPUS at a canonical-6 .jsonl file or "
        "CORPUS_ROOTS at folders of them, or set ALLOW_EMPTY=1 for a diagnostic run that "
        "reports missing-rows"
    )


def _write_rejections(corpus: Corpus, folder: Path) -> Path | None:
    if not corpus.rejections and not corpus.failed_encodes:
        return None
    path = folder / "rejections.json"
    write_json(path, corpus.rejection_report())
    for r in corpus.rejections[:10]:
        log.warning("rejected %s: %s %s (fix: %s)", r.record, r.field, r.reason, r.fix)
    if len(corpus.rejections) > 10:
        log.warning("... %d more rejected rows in %s", len(corpus.rejections) - 10, path)
    return path


def _provenance(
    request: PredictorRequest, corpus: Corpus, outputs: Sequence[Path]
) -> dict[str, Any]:
    sha, dirty = git_state(Path.cwd())
    inputs = [
        {
            "path": f["path"],
            "sha256": f["sha256"],
            "role": "corpus",
            "rows": f["rows"],
            "rejected": f["rejected"],
        }
        for f in corpus.files
    ]
    inputs.append(
        {"path": request.gates.as_posix(), "sha256": sha256_path(request.gates), "role": "gates"}
    )
    return {
        "schema": report.SCHEMA_ID,
        "entrypoint": ENTRYPOINT,
        "argv": list(request.argv),
        "args": {
            "codec": list(request.codecs),
            "epochs": request.epochs,
            "report_out": request.report_out.as_posix() if request.report_out else None,
            "synthetic_smoke": request.synthetic_smoke,
            "allow_empty": request.environ.get("ALLOW_EMPTY", "") == "1",
            "params": asdict(request.params),
        },
        "git_sha": f"{sha}{'-dirty' if dirty else ''}",
        "inputs": inputs,
        "outputs": [{"path": p.as_posix(), "sha256": sha256_path(p)} for p in outputs],
    }


def _start(
    tracker: Tracker | None,
    name: str,
    parent: TrackedRun | None,
    request: PredictorRequest,
    codec: str = "",
) -> TrackedRun | None:
    if tracker is None:
        return None
    sha, _ = git_state(Path.cwd())
    tags = {
        "modelyard.kind": "predictor",
        "git_sha": sha,
        "synthetic_smoke": str(request.synthetic_smoke).lower(),
    }
    if codec:
        tags["codec"] = codec
    run = tracker.start_run(
        EXPERIMENT, run_name=name, tags=tags, parent_run_id=parent.run_id if parent else None
    )
    if codec:
        run.log_params(
            {
                "codec": codec,
                "epochs": request.epochs or request.params.epochs,
                **asdict(request.params),
            }
        )
    return run


def _track(child: TrackedRun, entry: dict[str, Any], artifacts: Sequence[Path]) -> None:
    for fold in entry["folds"]:
        child.log_metrics(
            {k: fold[k] for k in ("plcc", "plcc_logistic", "srocc", "rmse")},
            step=fold["fold_index"],
        )
    summary = {
        k: entry[k]
        for k in ("mean_plcc", "plcc_spread", "mean_srocc", "mean_rmse")
        if entry[k] is not None
    }
    child.log_metrics(summary | {"n_rows_total": entry["n_rows_total"]}, step=0)
    child.set_tags(
        {"status": entry["status"], "failure_reasons": "; ".join(entry["failure_reasons"])[:4000]}
    )
    child.log_artifacts([p for p in artifacts if p.is_file()])
    child.finish()


@contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Everything modelyard logs during the run, also into ``path`` (``train_<UTC>.log``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("modelyard")
    previous = root.level
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
