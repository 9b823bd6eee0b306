"""Drift of live statistics from the promotion reference, with alarm bounds that know the
sample size.

For one feature, the reference holds counts ``r`` over fixed bins (``m`` values) and a live
window holds counts ``l`` over the same bins (``n`` values). Their population stability index
is ``PSI = sum_i (p_i - q_i) ln(p_i / q_i)`` with ``p = r/m`` and ``q = l/n``. With no drift
both are samples of one distribution, and ``PSI * n*m/(n+m)`` is approximately chi-square
with ``B - 1`` degrees of freedom (PSI is the symmetric Kullback-Leibler divergence, whose
second-order expansion is the two-sample chi-square statistic). So the PSI that a window of
``n`` values exceeds with probability ``alpha`` when nothing changed is::

    bound(alpha) = chi2.ppf(1 - alpha, B - 1) * (n + m) / (n * m)

A fixed bound (PSI 0.1) is wrong at both ends: at n = 100 on 10 bins it sits below the
no-drift 95th percentile and fires on unchanged data, at n = 50 it misses real shifts.

- **Bins**: the approximation needs about 5 expected counts a bin in both samples, so
  adjacent bins are merged (in order) until each merged bin expects at least
  ``min_expected`` values of the smaller sample (``min(n, m) * p_i``); ``B`` is the number
  of merged bins. Empty cells get 0.5 before the ratio. (Merged on ``n`` alone, unchanged
  windows raised alarms at 1.5-2 times the configured rate when ``n`` exceeded ``m``.)
- **Many tests**: each run tests every feature of every bundle with telemetry in the window.
  The family-wise false-alarm rate per run is held at ``false_alarm_rate`` with the
  Bonferroni correction (``alpha = false_alarm_rate / tests``), valid whatever the
  dependence between features. ``warn`` uses ``warn_rate`` the same way.
- **Class mix**: a chi-square test of homogeneity between the reference's and the window's
  class counts (same correction).
- **Small windows**: fewer than ``min_samples`` values is ``insufficient``, never ``ok``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from modelyard.errors import ConfigError

OK, WARN, ALARM, INSUFFICIENT, NO_REFERENCE = "ok", "warn", "alarm", "insufficient", "no-reference"
SEVERITY = {NO_REFERENCE: 0, INSUFFICIENT: 1, OK: 2, WARN: 3, ALARM: 4}
SMOOTH = 0.5


@dataclass(frozen=True, kw_only=True)
class DriftParams:
    """params.yaml ``drift``."""

    false_alarm_rate: float = 0.01  # per run, over every feature of every bundle tested
    warn_rate: float = 0.1
    min_samples: int = 30  # live values a feature needs in a window to be judged
    min_expected: float = 5.0  # live values each merged bin must expect
    auto_rollback: bool = False  # withdraw a canary whose window is an alarm

    def __post_init__(self) -> None:
        if not 0 < self.false_alarm_rate < self.warn_rate < 1:
            raise ConfigError(
                f"drift: need 0 < false_alarm_rate ({self.false_alarm_rate}) < warn_rate "
                f"({self.warn_rate}) < 1"
            )
        if self.min_samples < 1 or self.min_expected <= 0:
            raise ConfigError("drift.min_samples must be >= 1 and drift.min_expected > 0")


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    name: str
    state: str
    psi: float | None
    bound: float | None  # the alarm bound at this n
    warn_bound: float | None
    n: int
    m: int
    bins: int  # after merging

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def merge(reference: Sequence[float], n: int, min_expected: float) -> list[list[int]]:
    """Groups of adjacent bin indexes, each expecting >= ``min_expected`` of ``n`` values
    under the reference's shares (a short tail joins the last group)."""
    total = float(sum(reference)) or 1.0
    groups: list[list[int]] = [[]]
    expected = 0.0
    for i, count in enumerate(reference):
        groups[-1].append(i)
        expected += n * count / total
        if expected >= min_expected:
            groups.append([])
            expected = 0.0
    if not groups[-1]:
        groups.pop()
    elif len(groups) > 1:  # a short tail joins the group before it
        tail = groups.pop()
        groups[-1] += tail
    return groups


@functools.lru_cache(maxsize=65536)
def _merged(
    reference: tuple[float, ...], n: int, min_expected: float
) -> tuple[tuple[tuple[int, ...], ...], tuple[float, ...]]:
    """``merge``'s groups and the reference's counts in them, kept (immutable) for the next
    window whose feature sees as many values."""
    groups = tuple(tuple(g) for g in merge(reference, n, min_expected))
    return groups, tuple(sum(reference[i] for i in g) for g in groups)


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """PSI of two count vectors over the same bins, each cell given ``SMOOTH`` first (plain
    Python: on 20 bins it is several times faster than numpy's per-call overhead)."""
    ref_total = float(sum(reference)) + SMOOTH * len(reference)
    live_total = float(sum(live)) + SMOOTH * len(live)
    value = 0.0
    for r, q_count in zip(reference, live, strict=True):
        p = (r + SMOOTH) / ref_total
        q = (q_count + SMOOTH) / live_total
        value += (p - q) * math.log(p / q)
    return value


def bound(alpha: float, bins: int, n: int, m: int) -> float:
    return critical(alpha, max(1, bins - 1)) * (n + m) / (n * m)


@functools.lru_cache(maxsize=4096)
def critical(alpha: float, df: int) -> float:
    """The chi-square quantile a run needs for every test at one df (computed once)."""
    return float(sps.chi2.ppf(1 - alpha, df))


def feature(
    name: str, reference: Sequence[int], live: Sequence[int], alphas: tuple[float, float],
    params: DriftParams,
) -> FeatureDrift:  # fmt: skip
    """One feature's PSI, bounds and state; ``alphas`` = (alarm, warn), already corrected."""
    ref = [float(c) for c in reference]
    obs = [float(c) for c in live]
    n, m = int(sum(obs)), int(sum(ref))
    if n < params.min_samples or m == 0:
        return FeatureDrift(name=name, state=INSUFFICIENT, psi=None, bound=None,
                            warn_bound=None, n=n, m=m, bins=0)  # fmt: skip
    groups, ref_m = _merged(tuple(ref), min(n, m), params.min_expected)
    obs_m = [sum(obs[i] for i in g) for g in groups]
    value = psi(ref_m, obs_m)
    alarm, warn = bound(alphas[0], len(groups), n, m), bound(alphas[1], len(groups), n, m)
    state = ALARM if value > alarm else WARN if value > warn else OK
    return FeatureDrift(name=name, state=state, psi=value, bound=alarm, warn_bound=warn, n=n,
                        m=m, bins=len(groups))  # fmt: skip


def class_mix(
    reference: Mapping[str, int], live: Mapping[str, int], alphas: tuple[float, float],
    params: DriftParams,
) -> dict[str, Any]:  # fmt: skip
    """Chi-square homogeneity of the live class counts against the reference's."""
    names = sorted(set(reference) | set(live))
    ref = np.array([reference.get(c, 0) for c in names], dtype=np.float64)
    obs = np.array([live.get(c, 0) for c in names], dtype=np.float64)
    n, m = int(obs.sum()), int(ref.sum())
    out: dict[str, Any] = {"n": n, "m": m, "classes": names}
    if n < params.min_samples or m == 0 or len(names) < 2:
        return out | {"state": INSUFFICIENT, "chi2": None, "p_value": None}
    table = np.vstack([ref, obs]) + SMOOTH
    chi2, p_value, _, _ = sps.chi2_contingency(table, correction=False)
    state = ALARM if p_value < alphas[0] else WARN if p_value < alphas[1] else OK
    return out | {"state": state, "chi2": float(chi2), "p_value": float(p_value)}


def corrected(params: DriftParams, tests: int) -> tuple[float, float]:
    """(alarm, warn) significance per test, Bonferroni over ``tests`` tests."""
    k = max(1, tests)
    return params.false_alarm_rate / k, params.warn_rate / k


def overall(states: Sequence[str]) -> str:
    """The bundle's state: its worst judged feature; insufficient when none was judged."""
    if not states:
        return INSUFFICIENT
    return max(states, key=lambda s: SEVERITY[s])


def load(path: Any) -> DriftParams:
    """params.yaml ``drift`` (defaults where the file or the section is absent)."""
    from pathlib import Path

    from modelyard.config import from_mapping, load_params

    if path is None or not Path(path).is_file():
        return DriftParams()
    section = load_params(Path(path)).get("drift")
    return DriftParams() if section is None else from_mapping(DriftParams, section, "drift")
