"""``predictor_<codec>_card.md``: what the codec's predictor is, how it did fold by fold, and
its Status block — ``Production (gate cleared)`` or ``Proposed (gate-failed: REASON)``.

Regenerated whole on every run (the Status block is replaced, never appended); the Notes
section is carried over from the card on disk, as the detectors' cards do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.evaluation import model_card
from modelyard.evaluation.model_card import STATUS_END, STATUS_START
from modelyard.evaluation.predictor.gate import PASS


def path(folder: Path, codec: str) -> Path:
    return folder / f"predictor_{codec}_card.md"


def status_line(entry: dict[str, Any]) -> str:
    if entry["status"] == PASS:
        return "Production (gate cleared)"
    return f"Proposed (gate-failed: {'; '.join(entry['failure_reasons'])})"


def render(entry: dict[str, Any], gate: dict[str, Any], context: dict[str, Any]) -> str:
    onnx = entry.get("onnx") or {}
    rows = [
        ["codec", entry["codec"]],
        ["verdict", entry["status"]],
        ["rows / distinct sources", f"{entry['n_rows_total']} / {entry['n_distinct_sources']}"],
        ["features", ", ".join(entry.get("features", [])) or "n/a"],
        [
            "ONNX",
            f"{onnx.get('path')} (sha256 {onnx.get('sha256')})"
            if onnx.get("written")
            else "not written by this run (a previous one, if any, is kept as it was)",
        ],
        ["MLflow run", entry.get("mlflow_run_id") or "n/a"],
        ["report", context["report"]],
        ["run at", context["generated_at"]],
    ]
    parts = [
        f"# Model card: VMAF predictor for {entry['codec']}",
        f"{STATUS_START}\nStatus: {status_line(entry)}\n{STATUS_END}",
        "## Model\n\n" + model_card.table(["", ""], rows),
        "A small MLP (params.yaml `predictor`) from an encode's quality features, size, bitrate,"
        " cq and encoding time to the VMAF it scored. Its normalisation is fitted on the rows"
        " it trains on; the ONNX takes raw features in the order above and returns VMAF.",
        _folds(entry),
        _gate(entry, gate),
    ]
    if context.get("synthetic_smoke"):
        parts.append(
            "## Synthetic smoke\n\nThis run used generated rows only. It checks that"
            " the pipeline runs; it is not evidence about any codec and never passes."
        )
    return "\n\n".join(p for p in parts if p) + "\n"


def write(
    folder: Path, entry: dict[str, Any], gate: dict[str, Any], context: dict[str, Any]
) -> Path:
    target = path(folder, entry["codec"])
    model_card.write(target, render(entry, gate, context))
    return target


def _folds(entry: dict[str, Any]) -> str:
    if not entry["folds"]:
        return "## Leave-one-source-out folds\n\nNone were run: " + "; ".join(
            entry["failure_reasons"]
        )
    rows = [
        [
            f["fold_index"],
            ", ".join(f["held_out_sources"]),
            f["plcc"],
            f["plcc_logistic"],
            f["srocc"],
            f["rmse"],
            f["n_train"],
            f["n_val"],
        ]
        for f in entry["folds"]
    ]
    header = [
        "fold",
        "held-out sources",
        "PLCC",
        "PLCC (logistic)",
        "SROCC",
        "RMSE",
        "train",
        "val",
    ]
    return "## Leave-one-source-out folds\n\n" + model_card.table(header, rows)


def _gate(entry: dict[str, Any], gate: dict[str, Any]) -> str:
    rows = [
        ["mean PLCC", f">= {gate['mean_plcc_threshold']}", entry["mean_plcc"]],
        ["PLCC spread (max - min)", f"<= {gate['plcc_spread_max']}", entry["plcc_spread"]],
        [
            "every fold's PLCC",
            f">= {gate['per_fold_min']}",
            min((f[_kind(gate)] for f in entry["folds"]), default=None),
        ],
        ["folds of whole sources", f"= {gate['loso_fold_count']}", len(entry["folds"])],
    ]
    text = (
        f"## Gate (acceptance_gates.yaml `predictor`, PLCC {gate['plcc']}; see {gate['adr']})"
        "\n\n" + model_card.table(["check", "bound", "measured"], rows)
    )
    if entry["failure_reasons"]:
        text += "\n\nWhy it is not cleared:\n\n" + "\n".join(
            f"- {r}" for r in entry["failure_reasons"]
        )
    return text


def _kind(gate: dict[str, Any]) -> str:
    return "plcc_logistic" if gate["plcc"] == "logistic" else "plcc"
