"""Pictures of an evaluation, written as PNG files (``dvc plots show`` renders them, and they
are logged to the MLflow run) plus the curves' data as CSV for ``dvc plots diff``:

- ``pr_curve.png`` / ``pr_curve.csv``: precision against recall, per class (detectors: IoU 0.5);
- ``confusion_matrix.png``: counts at the operating threshold (detectors: with background);
- ``reliability.png`` / ``reliability.csv``: hit rate against score, before and after
  calibration, with the diagonal a calibrated model lies on;
- ``slices.png``: the headline metric per slice, small slices hatched, counts on the bars;
- ``buckets.png`` (regressors): mean prediction per 0-5 rating bucket;
- ``psi_over_time.png`` (a review cycle): each feature's PSI per drift window.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_all(
    report: dict[str, Any], reliability: dict[str, list[dict[str, float]]], folder: Path
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()
    written: list[Path] = []
    pytorch = report["pytorch"]
    if "pr_curve" in pytorch:
        written += pr_curve(pytorch["pr_curve"], folder)
    if "confusion_matrix" in pytorch:
        written.append(confusion(pytorch["confusion_matrix"], folder / "confusion_matrix.png"))
    if reliability:
        written += reliability_diagram(reliability, report["calibration"], folder)
    if report["slices"]:
        written.append(slice_bars(report["slices"], report["headline"], folder / "slices.png"))
    if "buckets" in pytorch:
        written.append(bucket_plot(pytorch["buckets"], folder / "buckets.png"))
    return written


def pr_curve(curve: dict[str, Any], folder: Path) -> list[Path]:
    plt = _pyplot()
    recall = curve["recall"]
    series = curve["precision"]
    if isinstance(series, list):  # a classifier: one curve
        series = {"positive": series}
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    rows = []
    for name, precision in series.items():
        ax.plot(recall, precision, label=name)
        rows += [
            {"class": name, "recall": r, "precision": p}
            for r, p in zip(recall, precision, strict=True)
        ]
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Precision-recall (test split)",
    )
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    png = _save(fig, folder / "pr_curve.png")
    return [png, _csv(rows, folder / "pr_curve.csv")]


def confusion(matrix: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    counts = np.asarray(matrix["counts"])
    labels = matrix["labels"]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    ax.imshow(counts, cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour)
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test split)")
    return _save(fig, path)


def reliability_diagram(
    curves: dict[str, list[dict[str, float]]], summary: dict[str, Any], folder: Path
) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    eces = {"before": summary.get("test_ece_before"), "after": summary.get("test_ece_after")}
    rows = []
    for name, points in curves.items():
        x = [p["confidence"] for p in points]
        y = [p["accuracy"] for p in points]
        ece = eces.get(name)
        label = f"{name} ({summary.get('method')})" if name == "after" else name
        ax.plot(x, y, marker="o", label=f"{label}, ECE {ece:.3f}" if ece is not None else label)
        rows += [{"curve": name, **p} for p in points]
    ax.set(
        xlabel="score",
        ylabel="fraction right",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Reliability (test split)",
    )
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return [_save(fig, folder / "reliability.png"), _csv(rows, folder / "reliability.csv")]


def slice_bars(rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 2), 4.5))
    values = [r["metrics"].get(metric) or 0.0 for r in rows]
    bars = ax.bar(range(len(rows)), values, color=["#9ab" if r["small"] else "#36c" for r in rows])
    for bar, row in zip(bars, rows, strict=True):
        if row["small"]:
            bar.set_hatch("//")
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"n={row['samples']}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(
        range(len(rows)), [f"{r['key']}={r['value']}" for r in rows], rotation=45, ha="right"
    )
    ax.set(ylabel=metric, title=f"{metric} per slice (hatched: too few samples to rely on)")
    return _save(fig, path)


def bucket_plot(buckets: list[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    full = [b for b in buckets if b["count"]]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 5], [0, 5], color="grey", linestyle="--", label="calibrated")
    ax.plot(
        [b["mean_label"] for b in full],
        [b["mean_prediction"] for b in full],
        marker="o",
        label="mean prediction",
    )
    ax.set(xlabel="mean label", ylabel="mean prediction", title="Rating buckets (test split)")
    ax.legend()
    return _save(fig, path)


def psi_over_time(windows: list[dict[str, Any]], alarm: str, path: Path) -> Path:
    """PSI per feature against each drift window's end; windows in state ``alarm`` marked."""
    from datetime import datetime

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ends = [datetime.fromisoformat(w["end"]) for w in windows]
    for name in sorted({k for w in windows for k in w["psi"]}):
        ax.plot(ends, [w["psi"].get(name) for w in windows], marker="o", label=name)
    for end, w in zip(ends, windows, strict=True):
        if w["state"] == alarm:
            ax.axvline(end, color="red", alpha=0.25)
    ax.set(xlabel="window end", ylabel="PSI", title=f"PSI per feature (red: {alarm} windows)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: stable bytes
    _pyplot().close(fig)
    return path


def _csv(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)
    return path
