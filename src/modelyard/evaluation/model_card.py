"""The model card (``model_card.md``): what the model is, how it scored on the test split —
overall, per class, per slice, per exported artifact — how far its scores can be trusted,
and its ``Status:`` block, which says whether every acceptance gate was cleared.

The card is regenerated whole on every gate run, so the Status block is replaced, never
appended. Only the Notes section between its markers is a person's to write: it is carried
over from the card already on disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from modelyard.evaluation import metrics
from modelyard.files import write_atomic

STATUS_START, STATUS_END = "<!-- modelyard:status -->", "<!-- /modelyard:status -->"
NOTES_START, NOTES_END = "<!-- modelyard:notes -->", "<!-- /modelyard:notes -->"
DEFAULT_NOTES = (
    "## Notes\n\nIntended use, known gaps, and anything a release owner should know. This section"
    " is yours: it is kept when the card is regenerated.\n"
)


def render(evaluation: dict[str, Any], gate: dict[str, Any], context: dict[str, Any]) -> str:
    parts = [
        f"# Model card: {evaluation['architecture']} ({evaluation['task']}), "
        f"policy {context.get('policy_id', '?')}",
        f"{STATUS_START}\nStatus: {gate['summary']}\n{STATUS_END}",
        _model(evaluation, context),
        _results(evaluation),
        _slices(evaluation),
        _calibration(evaluation),
        _artifacts(evaluation),
        _gates(gate),
        _limitations(evaluation, gate),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def write(path: Path, card: str) -> None:
    """Write ``card`` to ``path``, keeping the Notes section of the card already there."""
    notes = DEFAULT_NOTES
    if path.is_file():
        found = re.search(
            re.escape(NOTES_START) + r"\n(.*?)" + re.escape(NOTES_END),
            path.read_text(encoding="utf-8"),
            re.DOTALL,
        )
        if found:
            notes = found.group(1)
    write_atomic(path, f"{card}\n{NOTES_START}\n{notes}{NOTES_END}\n".encode())


def status(text: str) -> str:
    """The Status line of a card's text."""
    found = re.search(re.escape(STATUS_START) + r"\nStatus: (.*?)\n" + re.escape(STATUS_END), text)
    return found.group(1) if found else ""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _model(evaluation: dict[str, Any], context: dict[str, Any]) -> str:
    rows = [
        ["architecture", evaluation["architecture"]],
        ["task", evaluation["task"]],
        ["classes", ", ".join(evaluation["classes"])],
        ["dataset", context.get("dataset", "?")],
        ["snapshot hash", context.get("snapshot_hash", "?")],
        ["MLflow run", context.get("mlflow_run_id", "?")],
        ["git sha", context.get("git_sha", "?")],
        [
            "test / validation images",
            f"{evaluation['test_samples']} / {evaluation['validation_samples']}",
        ],
    ]
    return "## Model\n\n" + table(["", ""], rows)


def _results(evaluation: dict[str, Any]) -> str:
    pytorch = evaluation["pytorch"]
    keys = [k for k in metrics.REPORTED if k in pytorch]
    text = "## Test results (PyTorch)\n\n" + table(keys, [[pytorch[k] for k in keys]])
    if "threshold" in pytorch:
        text += f"\n\nPrecision, recall and F1 at the operating threshold {pytorch['threshold']}."
    per_class = pytorch.get("per_class")
    if per_class:
        rows = [
            [name, c["ap50"], c["ap50_95"], c["precision"], c["recall"], c["truth_boxes"]]
            for name, c in per_class.items()
        ]
        text += "\n\n### Per class\n\n" + table(
            ["class", "AP50", "AP50-95", "precision", "recall", "boxes"], rows
        )
    if "buckets" in pytorch:
        rows = [
            [b["bucket"], b["count"], b["mean_label"], b["mean_prediction"], b["bias"]]
            for b in pytorch["buckets"]
        ]
        text += "\n\n### Rating buckets\n\n" + table(
            ["bucket", "count", "mean label", "mean prediction", "bias"], rows
        )
    return text


def _slices(evaluation: dict[str, Any]) -> str:
    if not evaluation["slices"]:
        return ""
    metric = evaluation["headline"]
    rows = [
        [
            s["key"],
            s["value"],
            s["samples"],
            s["metrics"].get(metric),
            "small: read with care" if s["small"] else "",
        ]
        for s in evaluation["slices"]
    ]
    return "## Slices\n\n" + table(["key", "value", "samples", metric, ""], rows)


def _calibration(evaluation: dict[str, Any]) -> str:
    c = evaluation["calibration"]
    if c.get("method") is None:
        return f"## Calibration\n\nNone: {c.get('reason', '')}."
    return (
        f"## Calibration\n\nMethod **{c['method']}** (lowest out-of-fold validation ECE of "
        + ", ".join(f"{m} {_fmt(v)}" for m, v in c["validation_ece_by_method"].items())
        + f"). Test ECE {_fmt(c['test_ece_before'])} before, {_fmt(c['test_ece_after'])} after."
        " The lookup ships with the artifacts as `calibration.json`."
    )


def _artifacts(evaluation: dict[str, Any]) -> str:
    metric = evaluation["headline"]
    rows = []
    for a in evaluation["artifacts"]:
        measured = a["status"] == "measured"
        rows.append(
            [
                f"{a['format']}/{a['file']}",
                a["precision"],
                a["size_bytes"],
                a["sha256"][:16],
                a["inference_time_ms"],
                a["metrics"].get(metric) if measured else None,
                a["delta"][metric] if measured else None,
                a["metrics"].get("ece_after") if measured else None,
                "measured" if measured else f"skipped: {a['reason']}",
            ]
        )
    header = ["artifact", "precision", "bytes", "sha256", "ms", metric, "delta", "ECE", "status"]
    return "## Exported artifacts (test split, in their runtimes)\n\n" + table(header, rows)


def _gates(gate: dict[str, Any]) -> str:
    checks = gate["checks"]
    counts = {v: sum(c["verdict"] == v for c in checks) for v in ("pass", "fail", "skipped")}
    text = (
        f"## Acceptance gates\n\n{gate['status']}: {counts['pass']} passed,"
        f" {counts['fail']} failed, {counts['skipped']} skipped"
        f" (gates file version {gate['gates_file']['version']},"
        f" sha256 {gate['gates_file']['sha256'][:16]}). Every check is in `gate.json`."
    )
    shown = [c for c in checks if c["verdict"] != "pass"]
    if shown:
        rows = [
            [
                c["kind"],
                c["subject"],
                c["metric"],
                c["value"],
                f"{c['bound']} {c['threshold']}",
                c["verdict"],
                c["reason"],
            ]
            for c in shown
        ]
        text += "\n\n" + table(
            ["gate", "subject", "metric", "value", "bound", "verdict", "why"], rows
        )
    return text


def _limitations(evaluation: dict[str, Any], gate: dict[str, Any]) -> str:
    lines = [
        f"- Slice {s['key']}={s['value']} has {s['samples']} test samples: too few to rely on."
        for s in evaluation["slices"]
        if s["small"]
    ]
    lines += [
        f"- {a['format']}/{a['file']} was not run here: {a['reason']}"
        for a in evaluation["artifacts"]
        if a["status"] == "skipped"
    ]
    if not lines:
        return ""
    return "## Limitations\n\n" + "\n".join(lines)
