"""One format, start to finish, in the process that runs it: export every variant, check each
artifact's spec, run it on the test split in its runtime, compare it with the PyTorch model
(``parity``), time it, and write the manifest and the parity report. Any artifact that fails
fails the whole format (``ParityError``), after both files are written."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.errors import ConfigError, IntegrityError, ParityError, RuntimeUnavailable
from modelyard.export import decode, formats, parity, report, samples, source
from modelyard.export.config import ExportParams
from modelyard.export.formats import Format, Int8, Variant
from modelyard.export.manifest import sha256_path, size_bytes, tool_versions
from modelyard.export.runtime import Runner, latency, run_batches, torch_runner
from modelyard.export.samples import SamplePaths, Samples
from modelyard.export.source import INPUT_NAME, ExportModel
from modelyard.files import write_json

log = logging.getLogger(__name__)

DYNAMIC_BATCH = 4  # the dynamic-batch variant is checked at this batch size
MANIFEST, PARITY = "manifest.json", "parity.json"


@dataclass(frozen=True, kw_only=True)
class ExportPaths:
    model: Path  # train's output folder
    samples: SamplePaths
    out: Path  # the format's folder: artifacts, manifest.json, parity.json (every finding)
    metrics: Path  # per artifact: parity, latency, size (JSON for `dvc metrics`)


@dataclass(frozen=True, kw_only=True)
class Reference:
    """The PyTorch model's outputs on the test split, raw and decoded: what artifacts must match."""

    model: ExportModel
    test: Samples
    outputs: list[np.ndarray]
    predictions: Any  # decoded: detections per image, or one value per image


def export_format(name: str, params: ExportParams, paths: ExportPaths) -> dict[str, Any]:
    """Export ``name``; returns the manifest. Raises ParityError if any artifact fails."""
    fmt = formats.get(name)
    backend = fmt.load()
    torch.set_num_threads(params.threads)
    ref = reference(source.load(paths.model), paths.samples)
    model = ref.model
    int8 = _int8(model, fmt, params, paths.samples)
    # timed before the exporter loads TensorFlow or coremltools, whose idle threads slow it
    pytorch_ms = latency(
        torch_runner(model.network), ref.test.images[:1], params.latency_runs, params.threads
    )
    shutil.rmtree(paths.out, ignore_errors=True)
    log.info("%s: exporting %s (%d variants)", fmt.name, model.architecture, len(fmt.variants))
    start = time.perf_counter()
    written = backend.export(model, fmt.variants, paths.out, int8)
    seconds = time.perf_counter() - start
    artifacts = [
        check_artifact(fmt, v, written[v.name], ref, params) | {"export_seconds": round(seconds, 2)}
        for v in fmt.variants
    ]
    findings = [{"file": a["file"], **a.pop("parity_report")} for a in artifacts]
    manifest = _manifest(fmt, model, artifacts, pytorch_ms.median_ms, params.threads)
    return _recorded(fmt, manifest, findings, paths)


def verify_format(name: str, params: ExportParams, paths: ExportPaths) -> dict[str, Any]:
    """Check the artifacts ``name`` already exported (the same bytes, nothing re-exported)
    against the PyTorch model in their runtime, and rewrite the manifest and the parity report
    with what was found: on a machine that runs the format, a parity ``skipped`` elsewhere
    (CoreML off macOS) becomes passed or failed. Raises ParityError if any artifact fails."""
    fmt = formats.get(name)
    path = paths.out / MANIFEST
    if not path.is_file():
        raise ConfigError(
            f"{path}: no manifest; export the format first (`modelyard export run --format {name}`)"
        )
    old: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    torch.set_num_threads(params.threads)
    ref = reference(source.load(paths.model), paths.samples)
    by_file = {f"{v.name}{fmt.suffix}": v for v in fmt.variants}
    artifacts = []
    for listed in old["artifacts"]:
        file = paths.out / listed["file"]
        if listed["file"] not in by_file or not file.exists():
            raise IntegrityError(f"{file}: listed in {path} but not a {name} artifact here")
        if sha256_path(file) != listed["sha256"]:
            raise IntegrityError(
                f"{file}: its sha256 is not the manifest's; these are not the exported bytes"
            )
        checked = check_artifact(fmt, by_file[listed["file"]], file, ref, params)
        artifacts.append(checked | {"export_seconds": listed.get("export_seconds")})
        log.info("%s %s: was %s, now %s", name, file.name, listed["parity"]["status"],
                 checked["parity"]["status"])  # fmt: skip
    findings = [{"file": a["file"], **a.pop("parity_report")} for a in artifacts]
    return _recorded(
        fmt, old | {"artifacts": artifacts, "threads": params.threads}, findings, paths
    )


def _recorded(
    fmt: Format, manifest: dict[str, Any], findings: list[dict[str, Any]], paths: ExportPaths
) -> dict[str, Any]:
    """The manifest, the parity report and the metrics written; ParityError if any artifact
    failed (after all three are written)."""
    write_json(paths.out / MANIFEST, manifest)
    write_json(paths.out / PARITY, {"format": fmt.name, "artifacts": findings})
    write_json(paths.metrics, report.metrics(manifest))
    _raise_on_failure(fmt, manifest, paths.out / PARITY)
    return manifest


def reference(model: ExportModel, paths: SamplePaths) -> Reference:
    test = samples.load(model, paths, "test")
    outputs = run_batches(torch_runner(model.network), test.images, batch=8)
    return Reference(
        model=model, test=test, outputs=outputs, predictions=_decode(model, outputs, test)
    )


def _int8(model: ExportModel, fmt: Format, params: ExportParams, paths: SamplePaths) -> Int8:
    """How ``fmt``'s int8 variants are made; calibration images are read only for static."""
    static = params.int8_scheme == "static" and any(v.precision == "int8" for v in fmt.variants)
    if not static:
        return Int8(scheme=params.int8_scheme)
    images = samples.load(model, paths, "train", params.calibration_images).images
    return Int8(scheme="static", calibration=images)


def _decode(model: ExportModel, outputs: list[np.ndarray], test: Samples) -> Any:
    if model.task == "detect":
        return decode.detections(model.family, outputs, test.sizes, model.input.shape[-1])
    return decode.values(outputs)


def check_artifact(
    fmt: Format, variant: Variant, path: Path, ref: Reference, params: ExportParams
) -> dict[str, Any]:
    """One artifact: its spec, then (where this machine can run it) parity and latency."""
    backend = fmt.load()
    described = backend.describe(path)
    problems = _spec_problems(fmt, variant, described, ref)
    entry: dict[str, Any] = {
        "file": path.name,
        "precision": variant.precision,
        "batch": "dynamic" if variant.dynamic_batch else 1,
        "sha256": sha256_path(path),
        "size_bytes": size_bytes(path),
        "spec": described,
        "spec_problems": problems,
    }
    if variant.precision == "int8":
        entry["int8_scheme"] = params.int8_scheme
    try:
        runner = backend.open_runtime(path, ref.model.outputs, params.threads)
    except RuntimeUnavailable as exc:
        result = parity.skipped(str(exc))
        entry |= {"inference_time_ms": None, "latency": {"skipped": str(exc)}}
    else:
        result = _parity(runner, variant, ref, params)
        timed = latency(runner, ref.test.images[:1], params.latency_runs, params.threads)
        entry |= {"inference_time_ms": timed.median_ms, "latency": timed.__dict__}
    if problems:
        result = parity.ParityResult(
            status="failed", reason=f"spec: {problems[0]}", measures=result.measures,
            findings=tuple(problems), finding_count=len(problems),
        )  # fmt: skip
    timing = f", {entry['inference_time_ms']:.1f} ms" if entry["inference_time_ms"] else ""
    log.info("%s %s: parity %s%s%s", fmt.name, path.name, result.status,
             f" ({result.reason})" if result.reason else "", timing)  # fmt: skip
    full = result.as_dict()
    entry["parity"] = {k: full[k] for k in ("status", "reason", "measures")}
    entry["parity_report"] = full
    return entry


def _parity(
    runner: Runner, variant: Variant, ref: Reference, params: ExportParams
) -> parity.ParityResult:
    batch = DYNAMIC_BATCH if variant.dynamic_batch else 1
    outputs = run_batches(runner, ref.test.images, batch=batch)
    tol = params.parity.tolerance(variant.precision)
    model, test = ref.model, ref.test
    predictions = _decode(model, outputs, test)
    tensors = parity.tensor_parity(
        ref.outputs, outputs, tensors=model.outputs, names=test.names, bound=tol.tensor,
        query_set=model.family == "rtdetr", channel_axis=1 if model.family == "yolo" else -1,
        rows=_scored_queries(ref, params.parity.score_threshold),
    )  # fmt: skip
    if model.task == "detect":
        count = len(test.images)
        sample = samples.spread(count, params.parity.sample_images)
        decoded = parity.detection_parity(
            ref.predictions, predictions, names=test.names, truth=test.targets, sample=sample,
            params=params.parity, tol=tol,
        )  # fmt: skip
    else:
        decoded = parity.value_parity(
            ref.predictions, predictions, names=test.names, truth=test.targets,
            task=model.task, tol=tol,
        )  # fmt: skip
    return parity.combined(decoded, tensors)


def _scored_queries(ref: Reference, threshold: float) -> np.ndarray | None:
    """RT-DETR: the queries (images x queries) PyTorch scores at or above ``threshold``, the
    ones a device could act on. The rest are proposals near a tie in the top-k selection that
    a lower precision may swap for others; their raw values are not compared (the decoded
    comparison still sees any detection they would make). None for other families."""
    if ref.model.family != "rtdetr":
        return None
    logits = ref.outputs[0].astype(np.float64)
    scored: np.ndarray = 1 / (1 + np.exp(-logits.max(axis=-1))) >= threshold
    return scored


def _spec_problems(
    fmt: Format, variant: Variant, described: dict[str, Any], ref: Reference
) -> list[str]:
    """What the stored artifact declares, against what the model takes and gives."""
    problems = []
    inputs = described["inputs"]
    expected_input = list(_input_shape(fmt, ref.model))
    if [i["name"] for i in inputs] != [INPUT_NAME]:
        problems.append(f"inputs {[i['name'] for i in inputs]}, expected ['{INPUT_NAME}']")
    elif not variant.dynamic_batch and list(inputs[0]["shape"]) != expected_input:
        problems.append(f"input shape {inputs[0]['shape']}, expected {expected_input}")
    outputs = {o["name"]: o for o in described["outputs"]}
    if sorted(outputs) != sorted(ref.model.outputs):
        problems.append(f"outputs {sorted(outputs)}, expected {sorted(ref.model.outputs)}")
    elif not variant.dynamic_batch:
        for name, array in zip(ref.model.outputs, ref.outputs, strict=True):
            want = [1, *array.shape[1:]]
            shape = list(outputs[name]["shape"])
            if shape and shape != want:  # CoreML leaves output shapes unstated
                problems.append(f"output {name} shape {shape}, expected {want}")
    if "classes" in described and described["classes"] != list(ref.model.classes):
        problems.append(f"class labels {described['classes']}, expected {list(ref.model.classes)}")
    return problems


def _input_shape(fmt: Format, model: ExportModel) -> tuple[int, ...]:
    n, c, h, w = model.input.shape
    return (n, h, w, c) if fmt.layout == "NHWC" else (n, c, h, w)


def _manifest(
    fmt: Format, model: ExportModel, artifacts: list[dict[str, Any]], pytorch_ms: float,
    threads: int,
) -> dict[str, Any]:  # fmt: skip
    spec = model.input.as_dict() | {"layout": fmt.layout, "shape": list(_input_shape(fmt, model))}
    return {
        "format": fmt.name,
        "runtime": fmt.runtime,
        "architecture": model.architecture,
        "task": model.task,
        "classes": list(model.classes),
        "input": spec,
        "outputs": list(model.outputs),
        "source": {"checkpoint": model.checkpoint.name, "sha256": sha256_path(model.checkpoint)},
        "pytorch_inference_time_ms": pytorch_ms,
        "threads": threads,
        "artifacts": artifacts,
        "tools": tool_versions(),
    } | ({"good_threshold": model.good_threshold} if model.task == "regress" else {})


def _raise_on_failure(fmt: Format, manifest: dict[str, Any], report: Path) -> None:
    failed = [a for a in manifest["artifacts"] if a["parity"]["status"] == "failed"]
    if failed:
        lines = "; ".join(f"{a['file']}: {a['parity']['reason']}" for a in failed)
        raise ParityError(
            f"{fmt.name}: {len(failed)} of {len(manifest['artifacts'])} artifacts fail parity "
            f"({lines}); every finding is in {report}"
        )
