"""The ``evaluate`` stage: the trained model and every exported artifact on the test split.

1. The PyTorch model on the validation and test splits; its test metrics (``metrics``),
   per slice (``slices``) and, where params ask, per held-out group.
2. Calibration fitted on the validation split, ECE before and after on the test split.
3. Every artifact in the export manifests, its sha256 checked first, run in its runtime on
   the test split: the same metrics, the change from PyTorch, its latency from the manifest,
   and the calibration re-checked on its own scores. A runtime this machine lacks (CoreML off
   macOS) is reported ``skipped`` with the reason.

The result is one JSON document (``evaluation.json``) that the gate, the model card and the
plots read, and ``calibration.json``, which ships with the artifacts.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.errors import EvaluationError, RuntimeUnavailable
from modelyard.evaluation import calibration, metrics, slices
from modelyard.evaluation.calibration import ScoreCalibration
from modelyard.evaluation.config import EvaluateParams
from modelyard.evaluation.detection import outcomes
from modelyard.export import decode, formats, samples, source
from modelyard.export.manifest import sha256_path
from modelyard.export.runtime import Runner, run_batches, torch_runner
from modelyard.export.samples import SamplePaths, Samples
from modelyard.export.source import ExportModel

log = logging.getLogger(__name__)

DYNAMIC_BATCH = 4


@dataclass(frozen=True, kw_only=True)
class EvaluatePaths:
    model: Path  # train's output folder
    samples: SamplePaths
    exports: Path  # export's folders, one per format, each with its manifest.json


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    report: dict[str, Any]
    calibration: ScoreCalibration | None
    reliability: dict[str, list[dict[str, float]]]


def evaluate(params: EvaluateParams, paths: EvaluatePaths) -> Evaluation:
    torch.set_num_threads(params.threads)
    model = source.load(paths.model)
    test = samples.load(model, paths.samples, "test")
    validation = samples.load(model, paths.samples, "validation")
    records = _records(paths.samples.snapshot, test)
    pytorch = torch_runner(model.network)
    predicted = predict(model, pytorch, test, batch=8)
    fitted = _calibrate(model, params, predict(model, pytorch, validation, 8), validation)
    overall = _metrics(model, params, predicted, test.targets, curves=True)
    scored = _scored(model, params, predicted, test.targets)
    before = calibration.ece(scored[0], scored[2]) if scored else None
    after_scores = fitted.apply(scored[0], scored[1], model.classes) if fitted and scored else None
    after = (
        calibration.ece(after_scores, scored[2]) if scored and after_scores is not None else None
    )
    overall |= {"ece_before": before, "ece_after": after}
    report: dict[str, Any] = {
        "schema_version": 1,
        "task": model.task,
        "architecture": model.architecture,
        "classes": list(model.classes),
        "headline": metrics.HEADLINE[model.task],
        "test_samples": len(test.images),
        "validation_samples": len(validation.images),
        "pytorch": overall,
        "slices": slices.stratify(
            records,
            params.slice_keys,
            _scorer(model, params, predicted, test),
            min_samples=params.min_slice_samples,
        ),
        "groups": _groups(model, params, records, predicted, test),
        "calibration": _calibration_summary(fitted, before, after),
        "artifacts": _artifacts(
            _Judge(model=model, params=params, test=test, reference=overall, fitted=fitted),
            paths.exports,
        ),
    }
    curves = {}
    if scored:
        curves["before"] = calibration.reliability(scored[0], scored[2])
        if after_scores is not None:
            curves["after"] = calibration.reliability(after_scores, scored[2])
    return Evaluation(report=report, calibration=fitted, reliability=curves)


def predict(model: ExportModel, runner: Runner, data: Samples, batch: int) -> Any:
    """Decoded predictions of ``runner`` on ``data``: detections per image, or one value."""
    outputs = run_batches(runner, data.images, batch=batch)
    if model.task == "detect":
        return decode.detections(model.family, outputs, data.sizes, model.input.shape[-1])
    return decode.values(outputs)


def _metrics(
    model: ExportModel, params: EvaluateParams, predicted: Any, truth: list[Any], *, curves: bool
) -> dict[str, Any]:
    if model.task == "detect":
        return metrics.detect(predicted, truth, model.classes, params.threshold, curves=curves)
    labels = np.asarray(truth, dtype=np.float64)
    if model.task == "classify":
        return metrics.classify(predicted, labels, params.threshold, curves=curves)
    return metrics.regress(predicted, labels)


def _scored(
    model: ExportModel, params: EvaluateParams, predicted: Any, truth: list[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(scores, class indices, right or not) for calibration; None for a regressor."""
    if model.task == "detect":
        found = outcomes(predicted, truth, len(model.classes), params.calibration.min_score)
        return found.scores, found.labels, found.correct
    if model.task == "classify":
        p = np.asarray(predicted, dtype=np.float64)
        return p, np.zeros(len(p), dtype=np.int64), np.asarray(truth) >= 0.5
    return None


def _calibrate(
    model: ExportModel, params: EvaluateParams, predicted: Any, validation: Samples
) -> ScoreCalibration | None:
    scored = _scored(model, params, predicted, validation.targets)
    if scored is None:
        return None
    if not len(scored[0]):  # a model this unsure: nothing to fit; the ECE gate will say so
        log.warning(
            "calibration: no validation scores at or above evaluate.calibration.min_score=%s; "
            "scores are left as they are",
            params.calibration.min_score,
        )
        identity = calibration.fit("identity", scored[0], scored[2])
        return ScoreCalibration(
            task=model.task,
            method="identity",
            candidates=dict.fromkeys(calibration.METHODS),
            default=identity,
        )
    return calibration.calibrate(
        model.task,
        scored,
        model.classes,
        min_per_class=params.calibration.min_per_class,
        seed=0,
    )


def _calibration_summary(
    fitted: ScoreCalibration | None, before: float | None, after: float | None
) -> dict[str, Any]:
    if fitted is None:
        return {"method": None, "reason": "a regressor's rating is judged by its 0-5 buckets"}
    return {
        "method": fitted.method,
        "validation_ece_by_method": fitted.candidates,
        "per_class": sorted(fitted.per_class),
        "test_ece_before": before,
        "test_ece_after": after,
    }


def _scorer(
    model: ExportModel, params: EvaluateParams, predicted: Any, test: Samples
) -> slices.Scorer:
    def score(members: list[int]) -> dict[str, Any]:
        picked = [predicted[i] for i in members] if model.task == "detect" else predicted[members]
        truth = [test.targets[i] for i in members]
        full = _metrics(model, params, picked, truth, curves=False)
        return {k: v for k, v in full.items() if k not in ("per_class", "buckets", "samples")}

    return score


def _groups(
    model: ExportModel,
    params: EvaluateParams,
    records: list[dict[str, Any]],
    predicted: Any,
    test: Samples,
) -> dict[str, Any] | None:
    if params.group_key is None:
        return None
    rows = slices.stratify(
        records, [params.group_key], _scorer(model, params, predicted, test), min_samples=1
    )
    return {"key": params.group_key, "folds": rows}


def _records(snapshot: Path, test: Samples) -> list[dict[str, Any]]:
    """Each test image's registry row (metadata, group key), in the samples' order."""
    with (snapshot / "manifest_test.csv").open(newline="", encoding="utf-8") as handle:
        by_id = {row["sample_id"]: row for row in csv.DictReader(handle)}
    records = []
    for sample_id, name in zip(test.sample_ids, test.names, strict=True):
        row = by_id.get(sample_id)
        if row is None:
            raise EvaluationError(
                f"test image {name} (sample {sample_id}) is not in the snapshot's test manifest;"
                " re-run the pipeline from `snapshot`"
            )
        records.append(
            {
                "sample_id": sample_id,
                "group_key": row.get("group_key", ""),
                "metadata": json.loads(row.get("metadata") or "{}"),
            }
        )
    return records


@dataclass(frozen=True, kw_only=True)
class _Judge:
    """What every artifact is measured against: the model's spec, the test split, PyTorch's
    figures on it, and the calibration fitted on validation."""

    model: ExportModel
    params: EvaluateParams
    test: Samples
    reference: dict[str, Any]
    fitted: ScoreCalibration | None


def _artifacts(judge: _Judge, exports: Path) -> list[dict[str, Any]]:
    found = []
    for manifest_path in sorted(exports.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for artifact in manifest["artifacts"]:
            path = manifest_path.parent / artifact["file"]
            found.append(_artifact(judge, formats.get(manifest["format"]), path, artifact))
    if not found:
        raise EvaluationError(f"no export manifests under {exports}; run the export stage first")
    return found


def _artifact(
    judge: _Judge, fmt: formats.Format, path: Path, artifact: dict[str, Any]
) -> dict[str, Any]:
    model, params, test = judge.model, judge.params, judge.test
    entry: dict[str, Any] = {
        "format": fmt.name,
        "file": artifact["file"],
        "precision": artifact["precision"],
        "sha256": artifact["sha256"],
        "size_bytes": artifact["size_bytes"],
        "inference_time_ms": artifact["inference_time_ms"],
        "export_parity": artifact["parity"]["status"],
    }
    actual = sha256_path(path)
    if actual != artifact["sha256"]:
        raise EvaluationError(
            f"{fmt.name}/{artifact['file']}: sha256 {actual[:12]}... differs from the manifest's "
            f"{artifact['sha256'][:12]}...; the file changed after export. "
            "Re-run `dvc repro export`"
        )
    try:
        runner = fmt.load().open_runtime(path, model.outputs, params.threads)
    except RuntimeUnavailable as exc:
        return entry | {"status": "skipped", "reason": str(exc)}
    batch = DYNAMIC_BATCH if artifact["batch"] == "dynamic" else 1
    predicted = predict(model, runner, test, batch)
    result = _metrics(model, params, predicted, test.targets, curves=False)
    result.pop("per_class", None)
    key = metrics.HEADLINE[model.task]
    mine, theirs = result.get(key), judge.reference.get(key)
    delta = None if mine is None or theirs is None else float(mine) - float(theirs)
    scored = _scored(model, params, predicted, test.targets)
    if judge.fitted is not None and scored is not None:
        result["ece_after"] = calibration.ece(
            judge.fitted.apply(scored[0], scored[1], model.classes), scored[2]
        )
    log.info("%s/%s: %s %.4f (PyTorch %+.4f)", fmt.name, path.name, key, mine or 0, delta or 0)
    return entry | {"status": "measured", "metrics": result, "delta": {key: delta}}


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures ``dvc metrics`` shows and MLflow charts: PyTorch's headline metrics, each
    artifact's headline, change and ECE, and each slice's headline."""
    metric = report["headline"]
    artifacts = {}
    for a in report["artifacts"]:
        if a["status"] == "measured":
            artifacts[f"{a['format']}/{a['file']}"] = {
                metric: a["metrics"].get(metric),
                "delta": a["delta"][metric],
                "ece_after": a["metrics"].get("ece_after"),
                "inference_time_ms": a["inference_time_ms"],
            }
    return {
        "pytorch": {
            k: report["pytorch"][k]
            for k in metrics.REPORTED
            if report["pytorch"].get(k) is not None
        },
        "artifacts": artifacts,
        "slices": {f"{s['key']}={s['value']}": s["metrics"].get(metric) for s in report["slices"]},
    }
