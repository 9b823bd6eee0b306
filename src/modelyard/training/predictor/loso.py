"""Leave-one-source-out folds and the figures each fold is judged by.

A fold is a set of whole sources: every row of a held-out source is in that fold's
validation set and in no training set, however many rows the source has. Sources are dealt
to folds in a seeded shuffle, round robin, so fold sizes in sources differ by at most one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.datasets.corpus import EncodeRow


@dataclass(frozen=True, kw_only=True)
class Fold:
    index: int
    held_out: tuple[str, ...]
    train: tuple[int, ...]  # row indices
    val: tuple[int, ...]


def folds(rows: Sequence[EncodeRow], k: int, seed: int) -> list[Fold]:
    """``k`` folds of whole sources; needs at least ``k`` distinct sources."""
    sources = sorted({r.src for r in rows})
    if len(sources) < k:
        raise ValueError(f"{len(sources)} distinct sources < {k} folds")
    order = np.random.default_rng(seed).permutation(len(sources))
    groups = [tuple(sorted(sources[j] for j in order[i::k])) for i in range(k)]
    out = []
    for index, held in enumerate(groups):
        held_set = set(held)
        val = tuple(i for i, r in enumerate(rows) if r.src in held_set)
        train = tuple(i for i, r in enumerate(rows) if r.src not in held_set)
        out.append(Fold(index=index, held_out=held, train=train, val=val))
    return out


@dataclass(frozen=True, kw_only=True)
class Scores:
    plcc: float  # Pearson, raw predictions
    plcc_logistic: float  # Pearson after the 4-parameter logistic mapping
    srocc: float
    rmse: float
    logistic_fitted: bool  # False: the mapping did not converge; plcc_logistic is the raw one


def scores(predicted: np.ndarray, truth: np.ndarray) -> Scores:
    from scipy import stats

    p = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((p - y) ** 2)))
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return Scores(plcc=0.0, plcc_logistic=0.0, srocc=0.0, rmse=rmse, logistic_fitted=False)
    plcc = float(stats.pearsonr(p, y)[0])
    srocc = float(stats.spearmanr(p, y)[0])
    mapped = logistic_mapping(p, y)
    fitted = mapped is not None
    plcc_logistic = float(stats.pearsonr(mapped, y)[0]) if mapped is not None else plcc
    return Scores(
        plcc=plcc, plcc_logistic=plcc_logistic, srocc=srocc, rmse=rmse, logistic_fitted=fitted
    )


def logistic(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The 4-parameter logistic of quality-assessment practice (VQEG): b2 + (b1 - b2) /
    (1 + exp(-(x - b3) / |b4|))."""
    z = np.clip(-(x - b3) / max(abs(b4), 1e-9), -50, 50)
    result: np.ndarray = b2 + (b1 - b2) / (1 + np.exp(z))
    return result


def logistic_mapping(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray | None:
    """``predicted`` mapped onto ``truth``'s scale by a fitted logistic, or None."""
    from scipy.optimize import OptimizeWarning, curve_fit

    start = [truth.max(), truth.min(), float(np.mean(predicted)), float(np.std(predicted)) or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic, predicted, truth, p0=start, maxfev=20_000)
    except (RuntimeError, ValueError):
        return None
    mapped = logistic(predicted, *params)
    if not np.all(np.isfinite(mapped)) or np.ptp(mapped) == 0:
        return None
    return mapped


def finite(value: float) -> float:
    """``value``, or 0.0 where it is not a number (a PLCC of constant predictions)."""
    return value if math.isfinite(value) else 0.0
