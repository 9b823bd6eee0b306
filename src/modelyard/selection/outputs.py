"""What every photo-selection model leaves behind: its MLflow run (params, every finite
metric, the gate, the files) and an ONNX file written only once onnxruntime has run it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.export import onnx as onnx_export
from modelyard.files import write_atomic, write_json
from modelyard.selection.data import Decisions
from modelyard.tracking import Tracker
from modelyard.training.lineage import git_state

log = logging.getLogger(__name__)

EXPERIMENT = "selection"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    metadata: dict[str, Any]
    path: Path  # the metadata file
    passed: bool


def finish(out: Path, name: str, metadata: dict[str, Any]) -> Outcome:
    """Write ``<name>_metadata.json`` and say the gate's verdict, loudly when it failed."""
    path = out / f"{name}_metadata.json"
    write_json(path, metadata)
    gate = metadata["gate"]
    if gate["status"] == "PASS":
        log.info("%s: gate PASS", name)
    else:
        log.error("%s: gate FAIL: %s", name, "; ".join(gate["reasons"]))
    return Outcome(metadata=metadata, path=path, passed=gate["status"] == "PASS")


def export_checked(
    network: torch.nn.Module,
    example: torch.Tensor,
    target: Path,
    names: tuple[str, str],
    check: Callable[[Callable[[np.ndarray], np.ndarray]], dict[str, Any]],
) -> dict[str, Any]:
    """Write ``network`` as ONNX (input, output ``names``) next to ``target``, hand a runner
    of it to ``check`` (which compares it with PyTorch and returns the parity record), then
    move it into place: a file that onnxruntime cannot run is never left at ``target``."""
    staged = target.with_name(target.name + ".staged")
    onnx_export.write_network(
        network, example, staged, input_name=names[0], outputs=(names[1],), dynamic_batch=True
    )
    runner = onnx_export.open_runtime(staged, (names[1],), threads=1)
    parity = check(lambda x: runner(x)[0])
    write_atomic(target, staged.read_bytes())
    staged.unlink()
    return parity


def track(
    tracker: Tracker | None,
    name: str,
    params: Any,
    results: Mapping[str, Any],
    gate: tuple[str, list[str]],
    decisions: Decisions,
    files: list[Path],
) -> str | None:
    """One run in the ``selection`` experiment; ``results`` nests split -> who -> measure
    (deeper levels are joined with dots); its id, or None without tracking."""
    if tracker is None:
        return None
    verdict, reasons = gate
    sha, dirty = git_state(Path.cwd())
    run = tracker.start_run(
        EXPERIMENT,
        run_name=name,
        tags={
            "modelyard.kind": name,
            "data_hash": decisions.data_hash,
            "dataset": decisions.dataset,
            "dataset_id": decisions.dataset_id,
            "git_sha": sha,
            "git_dirty": str(dirty).lower(),
        },
    )
    run.log_params(asdict(params))
    run.log_metrics(dict(_flat(results)), step=0)
    run.set_tags({"gate_status": verdict, "gate_reasons": "; ".join(reasons)[:4000]})
    run.log_artifacts(files)
    run.finish()
    return run.run_id


def _flat(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flat(value, name + ".")
        elif isinstance(value, int | float) and np.isfinite(value):
            out.append((name, float(value)))
    return out
