"""Score calibration: make a score mean what it says (of the detections scored 0.8, 80 % are
right), fitted on the validation split and judged on the test split.

Three methods are fitted — isotonic regression, Platt scaling (a logistic regression on the
score's logit) and temperature scaling (the logit divided by one learnt T) — and, as a fourth
candidate, leaving the score as it is. The method is chosen by its expected calibration error
(ECE) on the validation split, out of fold (k-fold), so isotonic's fit to the very points it
is judged on does not win by default; the chosen method is then refitted on the whole split.
Detectors get one calibrator per class (a class with too few validation detections uses the
one fitted on all classes).

Every calibrator is stored as a lookup table — ascending raw scores ``x`` and calibrated
``y``, applied by linear interpolation — so a device applies any method with the same few
lines; the fitted parameters are kept beside it for people.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHODS = ("identity", "isotonic", "platt", "temperature")
BINS = 15
FOLDS = 5
TABLE_POINTS = 201
EPS = 1e-6


@dataclass(frozen=True, kw_only=True)
class Calibrator:
    method: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    params: dict[str, float] = field(default_factory=dict)
    fitted_on: int = 0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": self.params,
            "fitted_on": self.fitted_on,
            "x": [round(v, 6) for v in self.x],
            "y": [round(v, 6) for v in self.y],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(
            method=data["method"],
            x=tuple(data["x"]),
            y=tuple(data["y"]),
            params=dict(data.get("params", {})),
            fitted_on=int(data.get("fitted_on", 0)),
        )


def ece(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = BINS) -> float | None:
    """Expected calibration error: the count-weighted gap between mean score and hit rate
    over ``bins`` equal-width score bins. ``None`` for no scores."""
    p = np.asarray(probabilities, dtype=np.float64)
    hit = np.asarray(outcomes, dtype=np.float64)
    if not len(p):
        return None
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(p[mask].mean() - hit[mask].mean())
    return float(total / len(p))


def reliability(
    probabilities: np.ndarray, outcomes: np.ndarray, bins: int = BINS
) -> list[dict[str, float]]:
    """Per non-empty bin: its centre, mean score, hit rate and count (for the diagram)."""
    p = np.asarray(probabilities, dtype=np.float64)
    hit = np.asarray(outcomes, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {
            "bin": (b + 0.5) / bins,
            "confidence": float(p[which == b].mean()),
            "accuracy": float(hit[which == b].mean()),
            "count": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    out: np.ndarray = np.log(p / (1 - p))
    return out


def _grid() -> np.ndarray:
    return np.linspace(0.0, 1.0, TABLE_POINTS)


def _identity(scores: np.ndarray, hits: np.ndarray) -> Calibrator:
    return Calibrator(method="identity", x=(0.0, 1.0), y=(0.0, 1.0), fitted_on=len(scores))


def _isotonic(scores: np.ndarray, hits: np.ndarray) -> Calibrator:
    from sklearn.isotonic import IsotonicRegression

    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, hits)
    x, y = fit.X_thresholds_.astype(float), fit.y_thresholds_.astype(float)
    if len(x) < 2:  # one distinct score: a flat line
        x, y = np.array([0.0, 1.0]), np.repeat(y[:1] if len(y) else [0.5], 2)
    return Calibrator(method="isotonic", x=tuple(x), y=tuple(y), fitted_on=len(scores))


def _platt(scores: np.ndarray, hits: np.ndarray) -> Calibrator:
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e4).fit(_logit(scores)[:, None], hits.astype(int))
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    grid = _grid()
    y = 1 / (1 + np.exp(-(a * _logit(grid) + b)))
    return Calibrator(
        method="platt", x=tuple(grid), y=tuple(y), params={"a": a, "b": b}, fitted_on=len(scores)
    )


def _temperature(scores: np.ndarray, hits: np.ndarray) -> Calibrator:
    from scipy.optimize import minimize_scalar

    z = _logit(scores)

    def nll(log_t: float) -> float:
        p = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), EPS, 1 - EPS)
        return float(-(hits * np.log(p) + (1 - hits) * np.log(1 - p)).mean())

    t = float(np.exp(minimize_scalar(nll, bounds=(-4, 4), method="bounded").x))
    grid = _grid()
    y = 1 / (1 + np.exp(-_logit(grid) / t))
    return Calibrator(
        method="temperature",
        x=tuple(grid),
        y=tuple(y),
        params={"temperature": t},
        fitted_on=len(scores),
    )


FITTERS: dict[str, Callable[[np.ndarray, np.ndarray], Calibrator]] = {
    "identity": _identity,
    "isotonic": _isotonic,
    "platt": _platt,
    "temperature": _temperature,
}


def fit(method: str, scores: np.ndarray, hits: np.ndarray) -> Calibrator:
    """``method`` fitted to ``scores`` and their outcomes; identity where a fit cannot be
    made (no scores, or every outcome the same)."""
    s, h = np.asarray(scores, np.float64), np.asarray(hits, np.float64)
    if len(np.unique(h)) < 2:
        return _identity(s, h)
    return FITTERS[method](s, h)


def cross_validated_ece(
    method: str, groups: Sequence[tuple[np.ndarray, np.ndarray]], seed: int
) -> float | None:
    """ECE of ``method``'s out-of-fold predictions, pooled over ``groups`` (one group per
    class for detectors), each group's calibrator fitted on the other folds of that group."""
    rng = np.random.default_rng(seed)
    predicted, actual = [], []
    for scores, hits in groups:
        folds = rng.permutation(len(scores)) % FOLDS
        for k in range(FOLDS):
            test = folds == k
            if test.any():
                calibrator = fit(method, scores[~test], hits[~test])
                predicted.append(calibrator.apply(scores[test]))
                actual.append(hits[test])
    if not predicted:
        return None
    return ece(np.concatenate(predicted), np.concatenate(actual))


def choose(groups: Sequence[tuple[np.ndarray, np.ndarray]], seed: int) -> dict[str, float | None]:
    """Each method's out-of-fold validation ECE (the lowest wins; ties go to the simpler)."""
    return {m: cross_validated_ece(m, groups, seed) for m in METHODS}


def best(candidates: dict[str, float | None]) -> str:
    scored = [(v, METHODS.index(m), m) for m, v in candidates.items() if v is not None]
    return min(scored)[2] if scored else "identity"


@dataclass(frozen=True, kw_only=True)
class ScoreCalibration:
    """What ships with the artifacts (``calibration.json``): the chosen method, one
    calibrator per class (detectors) or one for the positive class (classifiers), and the
    fallback fitted on every class together."""

    task: str
    method: str
    candidates: dict[str, float | None]  # out-of-fold validation ECE per method
    default: Calibrator
    per_class: dict[str, Calibrator] = field(default_factory=dict)

    def apply(self, scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        out = self.default.apply(scores)
        for index, name in enumerate(classes):
            if name in self.per_class:
                mask = np.asarray(labels) == index
                out[mask] = self.per_class[name].apply(np.asarray(scores)[mask])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "task": self.task,
            "score": "detection confidence -> probability that the detection is right (IoU 0.5)"
            if self.task == "detect"
            else "positive-class probability",
            "apply": "y = linear interpolation of (x, y) at the raw score; per class where listed,"
            " else default",
            "method": self.method,
            "validation_ece_by_method": self.candidates,
            "default": self.default.as_dict(),
            "per_class": {name: c.as_dict() for name, c in self.per_class.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreCalibration:
        return cls(
            task=data["task"],
            method=data["method"],
            candidates=dict(data["validation_ece_by_method"]),
            default=Calibrator.from_dict(data["default"]),
            per_class={k: Calibrator.from_dict(v) for k, v in data["per_class"].items()},
        )


def calibrate(
    task: str,
    scored: tuple[np.ndarray, np.ndarray, np.ndarray],
    classes: Sequence[str],
    *,
    min_per_class: int,
    seed: int,
) -> ScoreCalibration:
    """Fit on validation ``scored`` = (scores, class indices, outcomes). Detectors get a
    calibrator per class with at least ``min_per_class`` scored detections."""
    scores, labels, hits = (np.asarray(a) for a in scored)
    hits = hits.astype(np.float64)
    groups = [(scores, hits)]
    if task == "detect":
        groups = [(scores[labels == i], hits[labels == i]) for i in range(len(classes))]
        groups = [g for g in groups if len(g[0]) >= min_per_class] or [(scores, hits)]
    candidates = choose(groups, seed)
    method = best(candidates)
    per_class = {}
    if task == "detect":
        for index, name in enumerate(classes):
            mask = labels == index
            if mask.sum() >= min_per_class:
                per_class[name] = fit(method, scores[mask], hits[mask])
    return ScoreCalibration(
        task=task,
        method=method,
        candidates=candidates,
        default=fit(method, scores, hits),
        per_class=per_class,
    )
