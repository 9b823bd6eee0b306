"""Acceptance gates: the thresholds of ``acceptance_gates.yaml`` (one section per task),
checked against an evaluation. Every check becomes one row — its value, its bound, its
verdict and, when it fails, a sentence saying why — and the verdict is PASS only when no
check fails. A check that cannot be measured on this machine (CoreML off macOS) is
``skipped`` and listed, never passed.

The file::

    version: 1
    detect:                        # or classify / regress
      overall: {map50: {min: 0.6}, ...}          # metric: {min: x} or {max: x}
      per_slice: {min_samples: 5, metrics: {map50: {min: 0.5}}}
      calibration: {max_ece: 0.08}               # PyTorch and every measured artifact
      parity: {onnx: 0.01, tflite: 0.03}         # most |headline change| per format
      logo: {min_mean: 0.5, max_spread: 0.3, min_fold: 0.4}   # when params ask for groups
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelyard.config import pick
from modelyard.errors import GateError

SECTIONS = ("overall", "per_slice", "calibration", "parity", "logo")
PASS, FAIL = "PASS", "FAIL"
METRICS = {
    "detect": ("map50", "map50_95", "precision", "recall", "f1"),
    "classify": ("accuracy", "precision", "recall", "f1", "auc"),
    "regress": ("mae", "rmse", "plcc", "srocc"),
}


@dataclass(frozen=True, kw_only=True)
class Bound:
    metric: str
    kind: str  # min | max
    value: float

    def holds(self, measured: float) -> bool:
        return measured >= self.value if self.kind == "min" else measured <= self.value

    def text(self) -> str:
        return f"{'>=' if self.kind == 'min' else '<='} {self.value:g}"


@dataclass(frozen=True, kw_only=True)
class Gates:
    task: str
    version: int
    overall: tuple[Bound, ...] = ()
    slice_bounds: tuple[Bound, ...] = ()
    slice_min_samples: int | None = None
    max_ece: float | None = None
    parity: dict[str, float] = field(default_factory=dict)
    logo: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def load(path: Path, task: str) -> Gates:
    """The gates for ``task``; any unknown section, metric or bound is an error naming it."""
    if not path.is_file():
        raise GateError(f"{path}: no acceptance gates file; a model cannot be judged without one")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data.get("version"), int):
        raise GateError(f"{path}: 'version' (an integer) is missing")
    if task not in data:
        raise GateError(f"{path}: no section '{task}'; add one with the gates a {task} model meets")
    section = data[task] or {}
    where = f"{path}:{task}"
    for key in section:
        pick({s: s for s in SECTIONS}, key, f"{where}: section")
    per_slice = section.get("per_slice") or {}
    calibration = section.get("calibration") or {}
    logo = section.get("logo") or {}
    for key in logo:
        pick({k: k for k in ("min_mean", "max_spread", "min_fold")}, key, f"{where}.logo: key")
    for key in calibration:
        pick({"max_ece": 1}, key, f"{where}.calibration: key")
    return Gates(
        task=task,
        version=data["version"],
        overall=_bounds(section.get("overall") or {}, task, f"{where}.overall"),
        slice_bounds=_bounds(per_slice.get("metrics") or {}, task, f"{where}.per_slice.metrics"),
        slice_min_samples=per_slice.get("min_samples"),
        max_ece=calibration.get("max_ece"),
        parity={str(k): float(v) for k, v in (section.get("parity") or {}).items()},
        logo={str(k): float(v) for k, v in logo.items()},
        raw=section,
    )


def _bounds(spec: dict[str, Any], task: str, where: str) -> tuple[Bound, ...]:
    bounds = []
    for metric, limits in spec.items():
        pick({m: m for m in METRICS[task]}, metric, f"{where}: metric")
        if not isinstance(limits, dict) or not limits:
            raise GateError(f"{where}.{metric}: expected {{min: x}} or {{max: x}}, got {limits!r}")
        for kind, value in limits.items():
            pick({"min": 1, "max": 1}, kind, f"{where}.{metric}: bound")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise GateError(f"{where}.{metric}.{kind}: expected a number, got {value!r}")
            bounds.append(Bound(metric=metric, kind=kind, value=float(value)))
    return tuple(bounds)


def check(gates: Gates, evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check's row, in a stable order: overall, slices, calibration, parity, groups."""
    rows = [_bound_row("overall", "pytorch", b, evaluation["pytorch"]) for b in gates.overall]
    for s in evaluation["slices"]:
        subject = f"{s['key']}={s['value']}"
        if gates.slice_min_samples is not None:
            rows.append(
                _row(
                    "slice_samples",
                    subject,
                    "samples",
                    s["samples"],
                    Bound(metric="samples", kind="min", value=gates.slice_min_samples),
                )
            )
        rows += [_bound_row("slice", subject, b, s["metrics"]) for b in gates.slice_bounds]
    if gates.max_ece is not None:
        rows += _calibration_rows(gates.max_ece, evaluation)
    rows += _parity_rows(gates.parity, evaluation)
    rows += _logo_rows(gates.logo, evaluation)
    return rows


def verdict(rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    reasons = [r["reason"] for r in rows if r["verdict"] == "fail"]
    return (FAIL if reasons else PASS), reasons


def status_line(status: str, reasons: list[str]) -> str:
    if status == PASS:
        return "Production-ready (all gates cleared)"
    return f"Proposed (gate-failed: {'; '.join(reasons)})"


def _bound_row(kind: str, subject: str, bound: Bound, measured: dict[str, Any]) -> dict[str, Any]:
    return _row(kind, subject, bound.metric, measured.get(bound.metric), bound)


def _row(
    kind: str, subject: str, metric: str, value: Any, bound: Bound, *, skipped: str = ""
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"{kind}:{subject}:{metric}",
        "kind": kind,
        "subject": subject,
        "metric": metric,
        "value": value,
        "bound": bound.kind,
        "threshold": bound.value,
    }
    if skipped:
        return row | {"verdict": "skipped", "reason": skipped}
    if value is None:
        return row | {
            "verdict": "fail",
            "reason": f"{subject} {metric} could not be measured ({bound.text()} needed)",
        }
    ok = bound.holds(float(value))
    reason = "" if ok else f"{subject} {metric} {float(value):.4g} (needs {bound.text()})"
    return row | {"verdict": "pass" if ok else "fail", "reason": reason}


def _calibration_rows(max_ece: float, evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    bound = Bound(metric="ece_after", kind="max", value=max_ece)
    if evaluation["calibration"].get("method") is None:
        return [
            _row(
                "calibration",
                "pytorch",
                "ece_after",
                None,
                bound,
                skipped=evaluation["calibration"].get("reason", "not calibrated"),
            )
        ]
    rows = [
        _row("calibration", "pytorch", "ece_after", evaluation["pytorch"].get("ece_after"), bound)
    ]
    for a in evaluation["artifacts"]:
        subject = f"{a['format']}/{a['file']}"
        if a["status"] == "skipped":
            rows.append(_row("calibration", subject, "ece_after", None, bound, skipped=a["reason"]))
        else:
            rows.append(
                _row("calibration", subject, "ece_after", a["metrics"].get("ece_after"), bound)
            )
    return rows


def _parity_rows(limits: dict[str, float], evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    metric = evaluation["headline"]
    for fmt, limit in sorted(limits.items()):
        bound = Bound(metric=f"{metric}_delta", kind="max", value=limit)
        mine = [a for a in evaluation["artifacts"] if a["format"] == fmt]
        measured = [a for a in mine if a["status"] == "measured"]
        if not mine:
            rows.append(_row("parity", fmt, bound.metric, None, bound))  # no artifact: fails
        elif not measured:
            rows.append(_row("parity", fmt, bound.metric, None, bound, skipped=mine[0]["reason"]))
        else:
            deltas = [abs(a["delta"][metric]) for a in measured if a["delta"][metric] is not None]
            worst = max(deltas) if len(deltas) == len(measured) else None
            rows.append(_row("parity", fmt, bound.metric, worst, bound))
    return rows


def _logo_rows(limits: dict[str, float], evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    if not limits:
        return []
    metric = evaluation["headline"]
    groups = evaluation.get("groups")
    if not groups:
        bound = Bound(metric=metric, kind="min", value=0.0)
        return [
            _row(
                "logo",
                "groups",
                metric,
                None,
                bound,
                skipped="params evaluate.group_key is null: no per-group figures",
            )
        ]
    values = [f["metrics"].get(metric) for f in groups["folds"]]
    known = [float(v) for v in values if v is not None]
    lower = metric in ("mae", "rmse")
    stats = {
        "min_mean": (sum(known) / len(known)) if known else None,
        "max_spread": (max(known) - min(known)) if known else None,
        "min_fold": (max(known) if lower else min(known)) if known else None,
    }
    rows = []
    for key, limit in limits.items():
        kind = "max" if key == "max_spread" or lower else "min"
        name = {
            "min_mean": f"{metric}_mean",
            "max_spread": f"{metric}_spread",
            "min_fold": f"{metric}_worst_fold",
        }[key]
        rows.append(
            _row(
                "logo", groups["key"], name, stats[key], Bound(metric=name, kind=kind, value=limit)
            )
        )
    return rows
