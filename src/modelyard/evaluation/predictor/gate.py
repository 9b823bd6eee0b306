"""The predictor's gate: acceptance_gates.yaml ``predictor``, and the verdict on one codec.

A codec passes only with ``loso_fold_count`` folds of whole sources whose PLCC (raw, or
after the logistic mapping where ``plcc: logistic``) has a mean of at least
``mean_plcc_threshold``, a spread (max - min) of at most ``plcc_spread_max``, and no fold
under ``per_fold_min``. Every unmet condition is a reason, worded with its figures:
``mean PLCC 0.8520 < 0.9500``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelyard.config import pick
from modelyard.errors import ConfigError, GateError

SECTION = "predictor"
PASS, FAIL = "PASS", "FAIL"
INSUFFICIENT, MISSING = "insufficient-sources", "missing-rows"
STATUSES = (PASS, FAIL, INSUFFICIENT, MISSING)
PLCC_KINDS = ("raw", "logistic")
# float slack in the comparisons: 0.955 - 0.95 is 0.0050000000000000044, and a figure at its
# bound passes
EPS = 1e-12
SMOKE_REASON = "synthetic-smoke run: generated rows are not evidence; a smoke run never passes"


@dataclass(frozen=True, kw_only=True)
class PredictorGate:
    mean_plcc_threshold: float
    plcc_spread_max: float
    per_fold_min: float
    loso_fold_count: int
    plcc: str  # raw | logistic: which PLCC the thresholds read
    adr: str  # the decision record the thresholds come from
    parity_output: float  # most |ONNX - PyTorch| VMAF on any row
    parity_metric: float  # most RMSE change
    version: int

    def as_report(self) -> dict[str, Any]:
        return {
            "mean_plcc_threshold": self.mean_plcc_threshold,
            "plcc_spread_max": self.plcc_spread_max,
            "per_fold_min": self.per_fold_min,
            "loso_fold_count": self.loso_fold_count,
            "plcc": self.plcc,
            "adr": self.adr,
            "parity": {"output": self.parity_output, "metric": self.parity_metric},
            "version": self.version,
        }


_KEYS = (
    "mean_plcc_threshold",
    "plcc_spread_max",
    "per_fold_min",
    "loso_fold_count",
    "plcc",
    "adr",
    "parity",
)


def load(path: Path) -> PredictorGate:
    """The ``predictor`` section; a missing, unknown or mistyped key is an error naming it."""
    if not path.is_file():
        raise GateError(
            f"{path}: no acceptance gates file; a predictor cannot be judged without one"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    section = data.get(SECTION)
    if not isinstance(section, dict):
        raise GateError(f"{path}: no section '{SECTION}'; add the predictor's LOSO gate")
    where = f"{path}:{SECTION}"
    try:
        for key in section:
            pick({k: k for k in _KEYS}, key, f"{where}: key")
        missing = [k for k in _KEYS if k not in section]
        if missing:
            raise GateError(f"{where}: '{missing[0]}' is missing")
        numbers = {k: _number(section[k], f"{where}.{k}") for k in _KEYS[:3]}
        folds = section["loso_fold_count"]
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            raise GateError(f"{where}.loso_fold_count: expected an integer >= 2, got {folds!r}")
        pick({k: k for k in PLCC_KINDS}, str(section["plcc"]), f"{where}.plcc")
        parity = section["parity"] or {}
        for key in parity:
            pick({"output": 1, "metric": 1}, key, f"{where}.parity: key")
    except ConfigError as exc:
        raise GateError(str(exc)) from exc
    return PredictorGate(
        **numbers,
        loso_fold_count=folds,
        plcc=str(section["plcc"]),
        adr=str(section["adr"]),
        parity_output=_number(parity.get("output", 1e-3), f"{where}.parity.output"),
        parity_metric=_number(parity.get("metric", 1e-3), f"{where}.parity.metric"),
        version=int(data.get("version", 0)),
    )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GateError(f"{where}: expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    status: str
    mean_plcc: float | None
    plcc_spread: float | None
    reasons: tuple[str, ...]


def judge(fold_plcc: Sequence[float], gate: PredictorGate) -> Verdict:
    """PASS or FAIL for a codec whose LOSO ran, with every reason it failed."""
    if not fold_plcc:
        raise GateError("judge: no folds to judge")
    mean = sum(fold_plcc) / len(fold_plcc)
    spread = max(fold_plcc) - min(fold_plcc)
    reasons = []
    if len(fold_plcc) != gate.loso_fold_count:
        reasons.append(f"{len(fold_plcc)} LOSO folds != {gate.loso_fold_count}")
    if mean < gate.mean_plcc_threshold - EPS:
        reasons.append(f"mean PLCC {mean:.4f} < {gate.mean_plcc_threshold:.4f}")
    if spread > gate.plcc_spread_max + EPS:
        reasons.append(f"PLCC spread {spread:.4f} > {gate.plcc_spread_max:.4f}")
    low = [i for i, v in enumerate(fold_plcc) if v < gate.per_fold_min - EPS]
    if len(low) == 1:
        reasons.append(f"fold {low[0]} PLCC {fold_plcc[low[0]]:.4f} < {gate.per_fold_min:.4f}")
    elif low:
        worst = min(low, key=lambda i: fold_plcc[i])
        reasons.append(
            f"folds {', '.join(map(str, low))} PLCC < {gate.per_fold_min:.4f} "
            f"(lowest: fold {worst} at {fold_plcc[worst]:.4f})"
        )
    return Verdict(
        status=FAIL if reasons else PASS, mean_plcc=mean, plcc_spread=spread, reasons=tuple(reasons)
    )


def insufficient(n_sources: int, gate: PredictorGate) -> Verdict:
    return Verdict(
        status=INSUFFICIENT,
        mean_plcc=None,
        plcc_spread=None,
        reasons=(
            f"{INSUFFICIENT}: {n_sources} distinct source(s) < {gate.loso_fold_count} "
            "needed for the LOSO folds",
        ),
    )


def missing(codec: str) -> Verdict:
    return Verdict(
        status=MISSING,
        mean_plcc=None,
        plcc_spread=None,
        reasons=(f"{MISSING}: the corpus has no usable row of {codec}",),
    )


def smoke(verdict: Verdict) -> Verdict:
    """A synthetic-smoke run's verdict: whatever the figures, never PASS."""
    return Verdict(
        status=FAIL if verdict.status == PASS else verdict.status,
        mean_plcc=verdict.mean_plcc,
        plcc_spread=verdict.plcc_spread,
        reasons=(SMOKE_REASON, *verdict.reasons),
    )
