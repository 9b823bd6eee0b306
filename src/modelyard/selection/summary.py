"""The daily summary: ``reports/daily_summaries/<UTC date>.md``, what a person reads in the
morning — the latest integrity inspection's figures, and each selection model's validation
and test figures beside its baselines, with its gate.

It is written from the files the steps left (the newest ``ai_training_inspection_*.json``,
``ranker_metadata.json``, ``crop_metadata.json``), so it says only what was measured; a
step that has not run is listed as not run. Re-running on the same day replaces the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.files import write_atomic


def write(reports: Path, models: Path, day: str | None = None) -> Path:
    day = day or datetime.now(UTC).date().isoformat()
    lines = [f"# Photo selection, {day}", ""]
    lines += _integrity(reports)
    lines += _ranker(_load(models / "ranker_metadata.json"))
    lines += _crop(_load(models / "crop_metadata.json"))
    path = reports / f"{day}.md"
    write_atomic(path, ("\n".join(lines).rstrip() + "\n").encode("utf-8"))
    return path


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _integrity(reports: Path) -> list[str]:
    found = sorted(reports.glob("ai_training_inspection_*.json"))
    lines = ["## Integrity", ""]
    if not found:
        return [*lines, "Not run: `modelyard selection inspect DB` first.", ""]
    report = _load(found[-1]) or {}
    i = report["integrity"]
    lines += [
        f"- source: `{report['source']}` (inspected {report['created_at']})",
        f"- gate: **{i['summary']}**",
        "- by project: " + ", ".join(f"{k} {v}" for k, v in i["by_project"].items()),
        "- by action: " + ", ".join(f"{k} {v}" for k, v in i["by_action"].items()),
    ]
    lines += [f"- {count} x {rule}" for rule, count in i["by_rule"].items()]
    return [*lines, ""]


def _gate(m: dict[str, Any]) -> list[str]:
    out = [f"Gate: **{m['gate']['status']}**"]
    out += [f"- {r}" for r in m["gate"]["reasons"]]
    run = m.get("mlflow_run_id")
    return [*out, "", f"Data hash `{m['data_hash'][:12]}`, MLflow run `{run}`.", ""]


def _sizes(m: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v['groups']} bursts / {v['photos']} photos / {v['crops']} crops"
        for k, v in m["sizes"].items()
    )


def _ranker(m: dict[str, Any] | None) -> list[str]:
    lines = ["## Ranker (which photo of a burst is kept)", ""]
    if m is None:
        return [*lines, "Not run: `modelyard ranker train`.", ""]
    lines += [
        f"Trained {m['trained_at']} on {m['dataset']}: {_sizes(m)}.",
        "",
        "| split | model | selection accuracy | NDCG@3 |",
        "|---|---|---:|---:|",
    ]
    for split in ("validation", "test"):
        for who, v in [("ranker", m["metrics"][split]), *m["baselines"][split].items()]:
            lines.append(f"| {split} | {who} | {v['selection_accuracy']:.3f} | {v['ndcg3']:.3f} |")
    return [*lines, "", *_gate(m)]


def _crop(m: dict[str, Any] | None) -> list[str]:
    lines = ["## Crop proposer (the box a person crops to)", ""]
    if m is None:
        return [*lines, "Not run: `modelyard crop train`.", ""]
    lines += [
        f"Trained {m['trained_at']} on {m['dataset']}: cropped photos "
        + ", ".join(f"{k} {v}" for k, v in m["crops"].items())
        + ".",
        "",
        "| split | model | mean IoU | BDE | centre distance |",
        "|---|---|---:|---:|---:|",
    ]
    for split in ("validation", "test"):
        for who, v in [("proposer", m["metrics"][split]), *m["baselines"][split].items()]:
            lines.append(
                f"| {split} | {who} | {v['mean_iou']:.3f} | {v['bde']:.3f} | "
                f"{v['centre_distance']:.3f} |"
            )
    lines += ["", "Test mean IoU by stage:", "", "| stage | n | proposer | centre crop |"]
    lines.append("|---|---:|---:|---:|")
    by_stage = m["by_stage"]["test"]
    for stage, v in by_stage["proposer"].items():
        centred = by_stage["centre_crop"][stage]["mean_iou"]
        lines.append(f"| {stage} | {v['n']} | {v['mean_iou']:.3f} | {centred:.3f} |")
    return [*lines, "", *_gate(m)]
