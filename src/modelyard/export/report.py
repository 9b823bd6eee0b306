"""What the export manifests say, in two shapes: flat per-artifact numbers for
``dvc metrics`` and the parity table ``modelyard export show`` and ``make demo`` print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigError

# the measure the table shows for each kind of model, and its label
HEADLINE = {"detect": ("map50_delta", "mAP50 delta"), "classify": ("auc_delta", "AUC delta"),
            "regress": ("mae_delta", "MAE delta")}  # fmt: skip


def metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    """Per artifact: passed (1/0; null where parity could not run), latency, size, measures."""
    out: dict[str, Any] = {"pytorch_inference_time_ms": manifest["pytorch_inference_time_ms"]}
    for artifact in manifest["artifacts"]:
        status = artifact["parity"]["status"]
        out[artifact["file"]] = {
            "parity_passed": None if status == "skipped" else int(status == "passed"),
            "inference_time_ms": artifact["inference_time_ms"],
            "size_mb": round(artifact["size_bytes"] / 1e6, 3),
            **artifact["parity"]["measures"],
        }
    return out


def manifests(folder: Path) -> list[dict[str, Any]]:
    """Every ``<format>/manifest.json`` under ``folder``, by format name."""
    found = sorted(folder.glob("*/manifest.json"))
    if not found:
        raise ConfigError(f"{folder}: no export manifests; run `dvc repro export`")
    return [json.loads(path.read_text(encoding="utf-8")) for path in found]


def rows(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The parity table's rows for one format: one an artifact."""
    key, _ = HEADLINE[manifest["task"]]
    torch_ms = manifest["pytorch_inference_time_ms"]
    table = []
    for a in manifest["artifacts"]:
        ms = a["inference_time_ms"]
        measure = a["parity"]["measures"].get(key)
        table.append({
            "format": manifest["format"],
            "artifact": a["file"],
            "precision": a["precision"],
            "size MB": f"{a['size_bytes'] / 1e6:.1f}",
            "ms": "-" if ms is None else f"{ms:.1f}",
            "vs PyTorch": "-" if ms is None else f"{torch_ms / ms:.2f}x",
            "headline": "-" if measure is None else f"{measure:+.4f}",
            "parity": a["parity"]["status"],
            "reason": a["parity"]["reason"],
        })  # fmt: skip
    return table
