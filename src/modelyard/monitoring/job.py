"""The drift job: one window, every bundle with telemetry in it and every active bundle.

For each bundle it sums the window's telemetry in SQL, judges every feature of the promotion
reference (``drift.feature``) and the class mix, and writes one ``snapshot_type='live'`` row
(``drift_score`` = the largest PSI judged; null without a reference, with a warning naming
the bundle). Running the same window again replaces that row: one row per bundle and
window. An alarm on an active canary is written to the audit log as ``drift_hold`` (once per
window): from then on a rollout to a wider audience is refused until a later window is no
longer an alarm.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.db import bundles, inferences
from modelyard.db import drift as drift_db
from modelyard.db.connection import Connection
from modelyard.errors import ConfigError
from modelyard.monitoring import drift, estimates, reference
from modelyard.monitoring.drift import DriftParams

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_DURATION = re.compile(r"^(\d+)([mhd])$")
HOLD_EVENT = "drift_hold"


@dataclass(frozen=True, kw_only=True)
class BundleDrift:
    bundle_id: uuid.UUID
    label: str  # policy/vN
    tier: str | None
    state: str
    drift_score: float | None
    sample_count: int
    stats: dict[str, Any] = field(default_factory=dict)
    held: bool = False  # an alarm on an active canary


def parse_window(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"--window {text!r}: a duration such as 30m, 1h or 1d")
    value, unit = int(match[1]), match[2]
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: value})


def window_ending_before(at: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """The last complete window before ``at``, aligned to multiples of ``length`` since the
    epoch (so hourly runs at any minute judge the same hours)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = (at.astimezone(UTC) - epoch) // length
    end = epoch + steps * length
    return end - length, end


def run(
    conn: Connection, start: datetime, end: datetime, params: DriftParams, actor: str
) -> list[BundleDrift]:
    """Judge the window [start, end) for every bundle with telemetry in it or active now."""
    return run_windows(conn, [(start, end)], params, actor)[0]


def run_windows(
    conn: Connection, windows: Sequence[tuple[datetime, datetime]], params: DriftParams,
    actor: str, *, reader: Connection | None = None,
) -> list[list[BundleDrift]]:  # fmt: skip
    """Judge several windows in order (a backfill), each as its own run (its own
    correction, its own rows, its own holds). With ``reader``, a second connection, the next
    window's sums are read in PostgreSQL while this one is judged in Python."""
    known = _Bundles(conn)
    out = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_live, reader, *windows[0]) if reader and windows else None
        for k, (start, end) in enumerate(windows):
            live = pending.result() if pending else _live(conn, start, end)
            if reader and k + 1 < len(windows):
                pending = pool.submit(_live, reader, *windows[k + 1])
            out.append(_window(conn, known, start, end, live, params, actor))
    return out


def _live(conn: Connection, start: datetime, end: datetime) -> dict[uuid.UUID, dict[str, Any]]:
    return _merged(drift_db.live_counts(conn, start, end),
                   inferences.window_counts(conn, start, end, reference.BINS))  # fmt: skip


class _Bundles:
    """Bundle labels and promotion references, read once for every window of a run."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.active = [b["id"] for b in drift_db.active_bundles(conn)]
        self.labels: dict[uuid.UUID, dict[str, Any]] = {}
        self.refs: dict[uuid.UUID, dict[str, Any]] = {}

    def load(self, ids: Sequence[uuid.UUID]) -> None:
        missing = [i for i in ids if i not in self.labels]
        if missing:
            self.labels.update(drift_db.bundle_labels(self.conn, missing))
            self.refs.update(drift_db.references(self.conn, missing))


def _window(
    conn: Connection, known: _Bundles, start: datetime, end: datetime,
    live: dict[uuid.UUID, dict[str, Any]], params: DriftParams, actor: str,
) -> list[BundleDrift]:  # fmt: skip
    ids = sorted(set(live) | set(known.active), key=str)
    known.load(ids)
    refs = known.refs
    tests = sum(_tests(refs[i]["stats"], live.get(i), params) for i in ids if i in refs)
    alphas = drift.corrected(params, tests)
    results = []
    for bundle_id in ids:
        result = _judge(bundle_id, known.labels[bundle_id], refs.get(bundle_id),
                        live.get(bundle_id), alphas, params)  # fmt: skip
        result.stats["window"] = {"start": start.isoformat(), "end": end.isoformat()}
        result.stats["tests"] = tests
        results.append(result)
    rows = [
        drift_db.LiveRow(bundle_id=r.bundle_id, window_start=start, window_end=end,
                         stats=r.stats, sample_count=r.sample_count, drift_score=r.drift_score)
        for r in results
    ]  # fmt: skip
    with conn.transaction():
        drift_db.store_live(conn, rows)
        for result in results:
            if result.held:
                _hold(conn, result, start, end, actor)
    return results


def _merged(
    telemetry: dict[uuid.UUID, dict[str, Any]], scored: dict[uuid.UUID, dict[str, Any]]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Device telemetry and ``modelyard score``'s inferences of the window, summed per bundle
    (both are binned on the reference's edges)."""
    out = {k: v | {"inferences": 0} for k, v in telemetry.items()}
    for bundle_id, part in scored.items():
        into = out.setdefault(bundle_id, {"devices": 0, "windows": 0, "images": 0, "bins": {},
                                          "classes": {}, "inferences": 0})  # fmt: skip
        into["images"] += part["images"]
        into["inferences"] += part["images"]
        for feature, counts in part["bins"].items():
            summed = into["bins"].setdefault(feature, {})
            for index, count in counts.items():
                summed[index] = summed.get(index, 0) + count
        for name, count in part["classes"].items():
            into["classes"][name] = into["classes"].get(name, 0) + count
    return out


def _tests(stats: dict[str, Any], live: dict[str, Any] | None, params: DriftParams) -> int:
    """How many features (and the class mix) of one bundle have enough values to judge."""
    if live is None:
        return 0
    judged = sum(
        sum(live["bins"].get(name, {}).values()) >= params.min_samples
        for name, h in stats.get("histograms", {}).items()
        if "counts" in h
    )
    return int(judged) + int(sum(live["classes"].values()) >= params.min_samples)


def _judge(
    bundle_id: uuid.UUID, label: dict[str, Any], ref: dict[str, Any] | None,
    live: dict[str, Any] | None, alphas: tuple[float, float], params: DriftParams,
) -> BundleDrift:  # fmt: skip
    name = f"{label['policy_id']}/v{label['bundle_version']}"
    tier = label["bundle_tier"] if label["is_active"] else None
    live = live or {"devices": 0, "windows": 0, "images": 0, "bins": {}, "classes": {},
                    "inferences": 0}  # fmt: skip
    base = {"schema_version": SCHEMA_VERSION, "devices": live["devices"],
            "telemetry_windows": live["windows"], "inferences": live["inferences"],
            "correction": "bonferroni",
            "alpha": {"alarm": alphas[0], "warn": alphas[1]}}  # fmt: skip
    if ref is None:
        log.warning("%s has no promotion reference statistics: its drift is not judged", name)
        stats = base | {"state": drift.NO_REFERENCE, "features": {}}
        return BundleDrift(bundle_id=bundle_id, label=name, tier=tier, state=drift.NO_REFERENCE,
                           drift_score=None, sample_count=live["images"], stats=stats)  # fmt: skip
    features = {}
    for feature, histogram in sorted(ref["stats"].get("histograms", {}).items()):
        if "counts" not in histogram:
            continue
        counts = live["bins"].get(feature, {})
        observed = [counts.get(i, 0) for i in range(len(histogram["counts"]))]
        features[feature] = drift.feature(feature, histogram["counts"], observed, alphas, params)
    mix = drift.class_mix(_reference_classes(ref["stats"]), live["classes"], alphas, params)
    states = [f.state for f in features.values() if f.state != drift.INSUFFICIENT]
    states += [mix["state"]] if mix["state"] != drift.INSUFFICIENT else []
    state = drift.overall(states)
    judged = [f.psi for f in features.values() if f.psi is not None]
    stats = base | {
        "state": state,
        "features": {k: f.as_dict() for k, f in features.items()},
        "class_mix": mix,
        "estimate": estimates.estimate(str(ref["stats"].get("task")), ref["stats"],
                                       live["bins"], label.get("gold_eval_results")),
    }  # fmt: skip
    return BundleDrift(
        bundle_id=bundle_id, label=name, tier=tier, state=state,
        drift_score=max(judged) if judged else None, sample_count=live["images"], stats=stats,
        held=tier == "canary" and state == drift.ALARM,
    )  # fmt: skip


def _reference_classes(stats: dict[str, Any]) -> dict[str, int]:
    """The promotion reference's predicted class counts (stored as shares of a total)."""
    predicted = stats.get("class_mix", {}).get("predicted", {})
    total = int(predicted.get("total", 0))
    return {name: round(share * total) for name, share in predicted.get("share", {}).items()}


def _hold(
    conn: Connection, result: BundleDrift, start: datetime, end: datetime, actor: str
) -> None:
    window = {"start": start.isoformat(), "end": end.isoformat()}
    already = conn.execute(
        "SELECT 1 FROM verify_ai_bundle_events WHERE bundle_id = %s AND event = %s "
        "AND details->'window' = %s::jsonb",
        (result.bundle_id, HOLD_EVENT, json.dumps(window)),
    ).fetchone()
    if already:
        return
    alarms = {
        k: {"psi": v["psi"], "bound": v["bound"], "n": v["n"]}
        for k, v in result.stats["features"].items()
        if v["state"] == drift.ALARM
    }
    bundles.add_event(conn, result.bundle_id, HOLD_EVENT, actor,
                      {"window": window, "alarms": alarms, "drift_score": result.drift_score,
                       "tier": "canary"})  # fmt: skip
    log.warning("%s canary held: drift alarm in %s", result.label, ", ".join(alarms) or "class mix")


def hold(conn: Connection, bundle_id: uuid.UUID) -> dict[str, Any] | None:
    """The latest live row of the bundle if it is an alarm (the canary is held), else None."""
    row = drift_db.latest_state(conn, bundle_id)
    if row is not None and row["stats"].get("state") == drift.ALARM:
        return row
    return None
