"""``modelyard review cycle``: a released model version's scored outputs (the inference
history ``modelyard score`` writes) against the human labels of the same images.

- **Disagreement** per image: a classifier's calibrated probability against its 0/1 label, a
  rating model's 0-5 score against its rating (both ``|score - label|``; the image
  *disagrees* when the decision at the threshold differs from the label's); a detector's
  boxes at the threshold against the labelled boxes (IoU 0.5 per class: the scores of the
  boxes that match none plus one per labelled box none found; it disagrees when that is >0).
- **Slices**: the disagreement rate per value of each metadata key (phase, scenario, stream,
  ..., the split, the day the image was captured), small slices flagged as in evaluation.
- **Review set**: the ``top`` largest disagreements, then a seeded random ``near`` of the
  images scored within ``band`` of the threshold (3.7-4.3 for a rating model at 4.0), then a
  seeded random ``drifted`` of the images scored in windows the drift job marked warn or
  alarm. It is a ``review.csv`` that ``modelyard review apply`` turns into the next dataset
  version.
- **Metrics per model version** (kept in the database): disagreement rate, and accuracy /
  precision / recall (MAE for ratings), each with its standard error. A new version's cycle
  says, per metric and overall, ``improved`` / ``worse`` (the difference exceeds twice the
  standard error of the difference), ``unchanged`` (within it) or ``changed`` (some metrics
  better and some worse) against the last cycle of an earlier version of the policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.db import drift as drift_db
from modelyard.db import inferences, review_cycles
from modelyard.db.connection import Connection
from modelyard.errors import ConfigError, NotFoundError
from modelyard.evaluation import plots, slices
from modelyard.evaluation.detection import box_iou, match
from modelyard.evaluation.review_file import write as write_review
from modelyard.files import write_json
from modelyard.monitoring import drift

KEYS = ("phase", "scenario", "stream", "road_type", "split", "captured_day")
LOWER_IS_BETTER = frozenset({"disagreement_rate", "mae"})
DRIFTED = (drift.WARN, drift.ALARM)
REASONS = ("disagreement", "near_threshold", "drifted")
FIELDS = {"detect": "annotations", "classify": "is_compliant", "regress": "label_value"}


@dataclass(frozen=True, kw_only=True)
class CycleParams:
    top: int = 20  # the largest disagreements
    near: int = 10  # random images scored within ``band`` of the threshold
    drifted: int = 10  # random images of the windows drift marked warn or alarm
    band: float | None = None  # None: 0.3 for a rating model, 0.1 for probabilities
    keys: tuple[str, ...] = KEYS
    min_samples: int = 20  # a slice with fewer is flagged small
    windows: int = 168  # the latest live windows read for the drift part (a week of hours)
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.top, self.near, self.drifted) < 0:
            raise ConfigError("review cycle: --top, --near and --drifted must be at least 0")
        if self.band is not None and self.band <= 0:
            raise ConfigError(f"review cycle: --band {self.band} must be above 0")


@dataclass(frozen=True, kw_only=True)
class Cycle:
    report: dict[str, Any]
    json_path: Path
    markdown: Path
    review_csv: Path


def run(conn: Connection, bundle: dict[str, Any], params: CycleParams, out: Path) -> Cycle:
    """Judge the bundle's latest inference on every labelled sample, build the review set,
    record the metrics and write the report (JSON, Markdown, plots, review.csv)."""
    task = _task(bundle)
    rows = inferences.for_bundle(conn, [bundle["id"]])
    model_version = f"{bundle['policy_id']}/v{bundle['bundle_version']}"
    if not rows:
        raise NotFoundError(
            f"{model_version} has no scored dataset samples; score some first: `modelyard "
            f"score --bundle {model_version} --dataset NAME --split test`"
        )
    threshold = float(rows[0]["threshold"])
    band = params.band if params.band is not None else (0.3 if task == "regress" else 0.1)
    judged = [j for j in (judge(task, r, threshold, band) for r in rows) if j is not None]
    if not judged:
        raise NotFoundError(
            f"{model_version}: none of its {len(rows)} scored samples has a label to compare"
        )
    metrics = measure(task, judged)
    live = drift_db.live_rows(conn, bundle["id"], params.windows)
    flagged = [(r["window_start"], r["window_end"]) for r in live
               if r["stats"].get("state") in DRIFTED]  # fmt: skip
    window_rows = review_cycles.in_windows(conn, bundle["id"], flagged)
    drifted = [_drifted_item(task, r, threshold, band) for r in window_rows]
    chosen = [_listed(c) for c in pick(judged, drifted, params)]
    records = [{"metadata": _slice_metadata(j), "group_key": j["group_key"]} for j in judged]
    keys = [k for k in params.keys if any(k in r["metadata"] for r in records)]
    sliced = slices.stratify(
        records, keys, lambda m: _rate(judged, m), min_samples=params.min_samples
    )
    before = review_cycles.previous(conn, bundle["policy_id"], int(bundle["bundle_version"]))
    slug = model_version.replace("/", "_")
    folder = out / f"review_cycle_{slug}"
    review_csv, _ = write_review(chosen, folder)
    figures = _plots(live, sliced, folder)
    report = {
        "model_version": model_version,
        "bundle_id": str(bundle["id"]),
        "task": task,
        "threshold": threshold,
        "band": [round(threshold - band, 4), round(threshold + band, 4)],
        "scored_samples": len(rows),
        "labelled": len(judged),
        "metrics": metrics,
        "against": compare(metrics, before),
        "slices": sliced,
        "drift": [_window(r) for r in reversed(live)],
        "review_set": {
            "path": str(review_csv),
            "rows": len(chosen),
            "by_reason": {r: sum(c["reason"] == r for c in chosen) for r in REASONS},
        },
        "figures": [str(p.relative_to(out)) for p in figures],
    }
    review_cycles.record(
        conn, bundle=bundle, labelled=len(judged), metrics=metrics, review_set=len(chosen)
    )
    json_path = out / f"review_cycle_{slug}.json"
    write_json(json_path, report)
    markdown = out / f"review_cycle_{slug}.md"
    markdown.write_text(summary(report), encoding="utf-8")
    return Cycle(report=report, json_path=json_path, markdown=markdown, review_csv=review_csv)


def judge(
    task: str, row: Mapping[str, Any], threshold: float, band: float
) -> dict[str, Any] | None:
    """One scored, labelled image: its disagreement and whether it was near the threshold;
    None when the sample has no label for this task."""
    base = {
        "sample_id": str(row["sample_id"]),
        "image_path": row["image_path"],
        "split": row["split"],
        "metadata": row["metadata"] or {},
        "group_key": row["group_key"],
        "scored_at": row["scored_at"],
        "field": FIELDS[task],
    }
    if task == "detect":
        truth = (row["annotations"] or {}).get("objects")
        if truth is None:
            return None
        return base | _boxes(row["outputs"].get("boxes", []), truth, threshold, band)
    label = row["is_compliant"] if task == "classify" else row["label_value"]
    if label is None:
        return None
    value, score = float(label), float(row["score"])
    decided = score >= threshold
    truth_decision = value >= (0.5 if task == "classify" else threshold)
    return base | {
        "label": bool(label) if task == "classify" else value,
        "prediction": round(score, 4),
        "disagreement": abs(score - value),
        "disagrees": decided != truth_decision,
        "closeness": abs(score - threshold) if abs(score - threshold) <= band else None,
        "counts": {
            "tp": int(decided and truth_decision),
            "fp": int(decided and not truth_decision),
            "fn": int(truth_decision and not decided),
        },
    }


def _boxes(
    predicted: Sequence[Mapping[str, Any]],
    truth: Sequence[Mapping[str, Any]],
    threshold: float,
    band: float,
) -> dict[str, Any]:
    kept = [b for b in predicted if b["score"] >= threshold]
    kept.sort(key=lambda b: -b["score"])
    classes = sorted({b["class"] for b in kept} | {o["class"] for o in truth})
    matched_pred = np.zeros(len(kept), dtype=bool)
    matched_truth = np.zeros(len(truth), dtype=bool)
    for cls in classes:
        p_idx = [i for i, b in enumerate(kept) if b["class"] == cls]
        t_idx = [i for i, o in enumerate(truth) if o["class"] == cls]
        p_boxes = np.array([kept[i]["xyxy"] for i in p_idx], dtype=np.float64).reshape(-1, 4)
        t_boxes = np.array([_xyxy(truth[i]["bbox"]) for i in t_idx], dtype=np.float64).reshape(
            -1, 4
        )
        partners = match(box_iou(p_boxes, t_boxes), 0.5)
        for k, partner in enumerate(partners):
            if partner >= 0:
                matched_pred[p_idx[k]] = True
                matched_truth[t_idx[int(partner)]] = True
    gaps = [abs(b["score"] - threshold) for b in predicted if abs(b["score"] - threshold) <= band]
    extra = float(sum(b["score"] for b, m in zip(kept, matched_pred, strict=True) if not m))
    missed = int((~matched_truth).sum())
    tp = int(matched_pred.sum())
    return {
        "label": [{"class": o["class"], "bbox": o["bbox"]} for o in truth],
        "prediction": [_object(b) for b in kept],
        "disagreement": extra + missed,
        "disagrees": extra + missed > 0,
        "closeness": min(gaps) if gaps else None,
        "counts": {"tp": tp, "fp": len(kept) - tp, "fn": missed},
    }


def measure(task: str, judged: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each metric's value, its standard error and the count it is a share of."""
    n = len(judged)
    tp, fp, fn = (sum(j["counts"][k] for j in judged) for k in ("tp", "fp", "fn"))
    out = {"disagreement_rate": _share(sum(j["disagrees"] for j in judged), n)}
    out["precision"] = _share(tp, tp + fp)
    out["recall"] = _share(tp, tp + fn)
    if task != "detect":
        out["accuracy"] = _share(n - sum(j["disagrees"] for j in judged), n)
    if task == "regress":
        errors = np.array([j["disagreement"] for j in judged], dtype=np.float64)
        se = float(errors.std(ddof=1) / math.sqrt(n)) if n > 1 else None
        out["mae"] = {"value": float(errors.mean()), "se": se, "n": n}
    return out


def compare(
    metrics: Mapping[str, Mapping[str, Any]], before: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Per metric and overall: improved / worse (beyond twice the standard error of the
    difference) or unchanged; overall ``changed`` when some improved and some got worse."""
    if before is None:
        return None
    rows = {}
    for name, now in metrics.items():
        then = before["metrics"].get(name)
        if not then or now["value"] is None or then["value"] is None:
            continue
        delta = now["value"] - then["value"]
        se = math.sqrt((now["se"] or 0.0) ** 2 + (then["se"] or 0.0) ** 2)
        better = -delta if name in LOWER_IS_BETTER else delta
        verdict = "improved" if better > 2 * se else "worse" if better < -2 * se else "unchanged"
        rows[name] = {
            "previous": then["value"],
            "current": now["value"],
            "delta": delta,
            "se": se,
            "verdict": verdict,
        }
    verdicts = {r["verdict"] for r in rows.values()}
    overall = (
        "changed"
        if {"improved", "worse"} <= verdicts
        else "improved"
        if "improved" in verdicts
        else "worse"
        if "worse" in verdicts
        else "unchanged"
    )
    return {
        "model_version": before["model_version"],
        "labelled": before["labelled"],
        "at": before["created_at"].isoformat(),
        "verdict": overall,
        "metrics": rows,
    }


def pick(
    judged: Sequence[dict[str, Any]], drifted: Sequence[dict[str, Any]], params: CycleParams
) -> list[dict[str, Any]]:
    """The review set: top disagreements, then near-threshold and drifted-window images
    drawn at random (seeded), each image once."""
    ranked = sorted(
        (j for j in judged if j["disagreement"] > 0),
        key=lambda j: (-j["disagreement"], j["image_path"]),
    )
    chosen = [
        j | {"reason": "disagreement", "score": round(j["disagreement"], 4)}
        for j in ranked[: params.top]
    ]
    taken = {c["image_path"] for c in chosen}
    rng = np.random.default_rng(params.seed)
    near = [j for j in judged if j["closeness"] is not None and j["image_path"] not in taken]
    for i in sorted(rng.permutation(len(near))[: params.near]):
        chosen.append(
            near[i] | {"reason": "near_threshold", "score": round(near[i]["closeness"], 4)}
        )
        taken.add(near[i]["image_path"])
    pool = list({d["image_path"]: d for d in drifted if d["image_path"] not in taken}.values())
    for i in sorted(rng.permutation(len(pool))[: params.drifted]):
        chosen.append(pool[i] | {"reason": "drifted"})
    return chosen


def summary(report: Mapping[str, Any]) -> str:
    """The cycle as Markdown: metrics against the last version, slices, drift, review set."""
    lines = [
        f"# Review cycle: {report['model_version']}",
        "",
        f"{report['labelled']} labelled of {report['scored_samples']} scored samples; "
        f"{report['task']} at threshold {report['threshold']:g}.",
        "",
    ]
    against = report["against"]
    if against is None:
        lines += ["First cycle of this policy: nothing earlier to compare with.", ""]
    else:
        lines += [
            f"Against {against['model_version']} ({against['labelled']} labelled): "
            f"**{against['verdict']}**.",
            "",
        ]
    lines += ["| metric | value | ± se | previous | verdict |", "|---|---|---|---|---|"]
    compared = (against or {}).get("metrics", {})
    for name, m in report["metrics"].items():
        c = compared.get(name, {})
        lines.append(
            f"| {name} | {_fmt(m['value'])} | {_fmt(m['se'])} | "
            f"{_fmt(c.get('previous'))} | {c.get('verdict', '')} |"
        )
    lines += [
        "",
        "## Disagreement by slice",
        "",
        "| key | value | n | disagreement rate |",
        "|---|---|---|---|",
    ]
    for s in report["slices"]:
        flag = " (small)" if s["small"] else ""
        lines.append(
            f"| {s['key']} | {s['value']} | {s['samples']}{flag} | "
            f"{_fmt(s['metrics']['disagreement_rate'])} |"
        )
    flagged = [w for w in report["drift"] if w["state"] in DRIFTED]
    lines += [
        "",
        "## Drift",
        "",
        f"{len(report['drift'])} live windows, {len(flagged)} warn or "
        "alarm"
        + (": " + ", ".join(f"{w['end']} {w['state']}" for w in flagged[-5:]) if flagged else "."),
        "",
    ]
    review = report["review_set"]
    reasons = ", ".join(f"{v} {k}" for k, v in review["by_reason"].items())
    lines += [
        "## Review set",
        "",
        f"{review['rows']} images ({reasons}): `{review['path']}`. "
        "Fill in corrected_label, then `modelyard review apply` it to a new dataset "
        "version.",
        "",
    ]
    lines += [f"![{Path(f).stem}]({f})" for f in report["figures"]]
    return "\n".join(lines) + "\n"


def _task(bundle: Mapping[str, Any]) -> str:
    task = (bundle.get("reference") or {}).get("task")
    if task not in FIELDS:
        raise NotFoundError(
            f"{bundle['policy_id']}/v{bundle['bundle_version']}: its task is not recorded (no "
            "promotion reference statistics); promote it again to capture them"
        )
    return str(task)


def _rate(judged: Sequence[Mapping[str, Any]], members: list[int]) -> dict[str, Any]:
    return {"disagreement_rate": sum(judged[i]["disagrees"] for i in members) / len(members)}


def _share(k: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"value": None, "se": None, "n": 0}
    p = k / n
    return {"value": p, "se": math.sqrt(p * (1 - p) / n), "n": n}


def _slice_metadata(j: Mapping[str, Any]) -> dict[str, Any]:
    captured = j["metadata"].get("captured_at")
    day = str(captured)[:10] if captured else j["scored_at"].date().isoformat()
    return {**j["metadata"], "split": j["split"], "captured_day": day}


def _drifted_item(
    task: str, row: Mapping[str, Any], threshold: float, band: float
) -> dict[str, Any]:
    """An image scored in a drifted window: judged where it is a labelled sample, else
    listed by its source with no label (label it, or ingest it, to use it)."""
    if row["sample_id"] is not None:
        judged = judge(task, row, threshold, band)
        if judged is not None:
            return judged | {"score": round(float(row["score"]), 4)}
    return {
        "sample_id": str(row["sample_id"] or ""),
        "image_path": row["image_path"] or row["source"],
        "split": row["split"] or "",
        "field": FIELDS[task],
        "label": None,
        "prediction": round(float(row["score"]), 4),
        "score": round(float(row["score"]), 4),
    }


def _window(row: Mapping[str, Any]) -> dict[str, Any]:
    features = row["stats"].get("features", {})
    return {
        "start": row["window_start"].isoformat(),
        "end": row["window_end"].isoformat(),
        "state": row["stats"].get("state"),
        "sample_count": row["sample_count"],
        "psi": {k: v.get("psi") for k, v in features.items()},
    }


def _plots(
    live: Sequence[Mapping[str, Any]], sliced: list[dict[str, Any]], folder: Path
) -> list[Path]:
    out = []
    if sliced:
        out.append(
            plots.slice_bars(sliced, "disagreement_rate", folder / "disagreement_by_slice.png")
        )
    windows = [_window(r) for r in reversed(live)]
    if windows:
        out.append(plots.psi_over_time(windows, drift.ALARM, folder / "psi_over_time.png"))
    return out


def _listed(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the review files hold of a chosen image (no timestamps, no working fields)."""
    keep = ("sample_id", "image_path", "split", "reason", "score", "field", "label", "prediction")
    return {k: row.get(k) for k in keep}


def _xyxy(bbox: Sequence[float]) -> list[float]:
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def _object(box: Mapping[str, Any]) -> dict[str, Any]:
    x1, y1, x2, y2 = (round(float(v), 1) for v in box["xyxy"])
    return {
        "class": box["class"],
        "bbox": [x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)],
        "score": round(float(box["score"]), 3),
    }


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"
