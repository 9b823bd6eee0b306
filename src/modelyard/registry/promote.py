"""Release actions: promote a registered version, roll a policy's bundle out to a wider tier,
roll it back. Each one changes the registry (aliases and the tier's weight and targeting tags,
so that the registry stays the record of what is shipped) and then runs the bridge on the
models it touched, so the bundle table follows at once.

A version whose gate did not pass is refused. ``force_reason`` ships it anyway, on the
record: the reason and the actor go on the version's tags, in the audit log and on the
bundle row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modelyard.db import bundles
from modelyard.db.bundles import TIERS
from modelyard.errors import ConfigError, GateError, NotFoundError, RegistryError, StateError
from modelyard.evaluation import gates
from modelyard.monitoring import job
from modelyard.registry.aliases import set_alias
from modelyard.registry.bridge import (
    DEFAULT_WEIGHT,
    TAG_FORCE_REASON,
    TAG_FORCED_BY,
    Bridge,
    SyncReport,
    sync_model,
    targeting_tag,
    weight_tag,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Release:
    """Where a version goes: its tier, the share of devices (0-100) and who they are."""

    tier: str
    weight: int | None = None  # None: the tier's default (canary 10, production 100)
    targeting: dict[str, Any] | None = None
    force_reason: str | None = None


def parse_targeting(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f'--targeting: not valid JSON ({exc}); e.g. \'{{"region": ["eu"]}}\''
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError(
            '--targeting: a JSON object of device attributes, e.g. \'{"region": ["eu"]}\''
        )
    return value


def resolve_version(client: Any, name: str, ref: str) -> str:
    """``ref`` as a version number: digits as they are, else an alias of ``name``."""
    from mlflow.exceptions import MlflowException

    if ref.isdigit():
        try:
            client.get_model_version(name, ref)
        except MlflowException as exc:
            raise NotFoundError(f"{name} version {ref}: {exc.message}") from exc
        return ref
    try:
        return str(client.get_model_version_by_alias(name, ref).version)
    except MlflowException as exc:
        raise NotFoundError(
            f"{name}: no version {ref!r} (neither a number nor an alias); "
            "`modelyard model show` names the registered version"
        ) from exc


def promote(bridge: Bridge, name: str, ref: str, release: Release) -> SyncReport:
    """Give version ``ref`` of ``name`` the tier's alias (taking it from whoever held it) and
    bundle it. Promoting to production takes the canary alias off the same version."""
    client = bridge.client
    _check(release)
    version = resolve_version(client, name, ref)
    mv = client.get_model_version(name, version)
    status = (mv.tags or {}).get("gate_status", "unknown")
    if status != gates.PASS:
        if not release.force_reason:
            bundles.add_event(
                bridge.conn, None, "promotion_refused", bridge.actor,
                {"mlflow_model_name": name, "mlflow_model_version": version,
                 "tier": release.tier, "reason": f"gate {status}", "cause": bridge.cause},
            )  # fmt: skip
            raise GateError(
                f"{name} v{version}: gate {status}; a version whose gate did not pass is not "
                "promoted. `modelyard gate show` says why; to ship it anyway, on the record: "
                "--force --reason '...'"
            )
        client.set_model_version_tag(name, version, TAG_FORCE_REASON, release.force_reason)
        client.set_model_version_tag(name, version, TAG_FORCED_BY, bridge.actor)
        bundles.add_event(
            bridge.conn, None, "promotion_forced", bridge.actor,
            {"mlflow_model_name": name, "mlflow_model_version": version, "tier": release.tier,
             "gate_status": status, "reason": release.force_reason},
        )  # fmt: skip
        log.warning(
            "%s v%s: gate %s, promoted by force: %s", name, version, status, release.force_reason
        )
    _refuse_if_held(bridge, bundles.for_model_version(bridge.conn, name, version), release)
    with _aliases_locked(bridge, name):
        _set_tier(client, name, version, release)
    return sync_model(bridge, name, SyncReport(), only=(version,))


def _refuse_if_held(bridge: Bridge, bundle: dict[str, Any] | None, release: Release) -> None:
    """Auto-hold: while the latest drift window of an active canary is an alarm, it goes to
    no wider audience (production, or a higher weight)."""
    if bundle is None or not bundle["is_active"] or bundle["bundle_tier"] != "canary":
        return
    weight = release.weight if release.weight is not None else DEFAULT_WEIGHT[release.tier]
    if release.tier == "canary" and weight <= (bundle["weight"] or 0):
        return
    held = job.hold(bridge.conn, bundle["id"])
    if held is None:
        return
    features = held["stats"].get("features", {})
    alarms = (
        ", ".join(
            f"{k} PSI {v['psi']:.3f} > {v['bound']:.3f} (n={v['n']})"
            for k, v in features.items()
            if v["state"] == "alarm"
        )
        or "class mix"
    )
    window = f"{held['window_start']:%Y-%m-%d %H:%M} - {held['window_end']:%H:%M}"
    label = f"{bundle['policy_id']}/v{bundle['bundle_version']}"
    bundles.add_event(
        bridge.conn, bundle["id"], "rollout_refused", bridge.actor,
        {"tier": release.tier, "weight": weight, "reason": "drift alarm", "window": window,
         "cause": bridge.cause},
    )  # fmt: skip
    raise StateError(
        f"{label} is held: its drift window {window} is an alarm ({alarms}); a held canary "
        f"goes to no wider audience. `modelyard drift show {label}` has the evidence; the "
        "hold lifts when a later window is not an alarm"
    )


def rollout(
    bridge: Bridge, policy_id: str, release: Release, bundle_ref: str | None = None
) -> SyncReport:
    """Move a policy's bundle (by default its active canary) to ``release.tier`` with its
    weight: the registry's alias follows, the bridge does the rest."""
    _check(release)
    bundle = (
        bundles.get(bridge.conn, bundle_ref)
        if bundle_ref
        else bundles.active(bridge.conn, policy_id, "canary")
    )
    if bundle is None:
        raise StateError(
            f"policy {policy_id} has no active canary bundle to roll out; promote a version "
            "with `modelyard promote MODEL VERSION --to canary` first, or name --bundle"
        )
    if bundle["policy_id"] != policy_id:
        raise StateError(
            f"bundle {bundle['policy_id']}/v{bundle['bundle_version']} is not of policy {policy_id}"
        )
    name, version = bundle["mlflow_model_name"], bundle["mlflow_model_version"]
    _refuse_if_held(bridge, bundle, release)
    with _aliases_locked(bridge, name):
        _set_tier(bridge.client, name, version, release)
    return sync_model(bridge, name, SyncReport(), only=(version,))


def rollback(bridge: Bridge, policy_id: str, tier: str, reason: str | None) -> SyncReport:
    """Take the tier's active bundle off devices. Production goes back to the bundle that held
    it before (reactivated as it was); a canary is simply withdrawn."""
    if tier not in TIERS:
        raise ConfigError(f"tier '{tier}': expected one of {', '.join(TIERS)}")
    conn, client = bridge.conn, bridge.client
    current = bundles.active(conn, policy_id, tier)
    if current is None:
        raise StateError(f"policy {policy_id} has no active {tier} bundle to roll back")
    previous = (
        bundles.previous_in_tier(conn, policy_id, tier, current["id"])
        if tier == "production"
        else None
    )
    if tier == "production" and previous is None:
        raise StateError(
            f"{policy_id}/v{current['bundle_version']} is the first production bundle of "
            f"{policy_id}: there is nothing to roll back to. To withdraw it, remove its "
            "`production` alias in MLflow and run `modelyard bridge sync`"
        )
    name, version = current["mlflow_model_name"], current["mlflow_model_version"]
    details = {
        "tier": tier, "reason": reason, "to": previous["bundle_version"] if previous else None,
        "mlflow_model_name": name, "mlflow_model_version": version,
    }  # fmt: skip
    names = (name, previous["mlflow_model_name"]) if previous else (name,)
    with _aliases_locked(bridge, *names):
        _drop_alias(client, name, version, tier)
        if previous is not None:
            set_alias(client, previous["mlflow_model_name"], tier, previous["mlflow_model_version"])
    bundles.add_event(conn, current["id"], "rolled_back", bridge.actor, details)
    report = sync_model(bridge, name, SyncReport(), only=())
    if previous is not None and previous["mlflow_model_name"] != name:
        sync_model(bridge, previous["mlflow_model_name"], report, only=())
    return report


def _set_tier(client: Any, name: str, version: str, release: Release) -> None:
    """The tier's alias on ``version``, with its weight and targeting as version tags (a tag
    left out goes back to the default)."""
    tags = {
        weight_tag(release.tier): None if release.weight is None else str(release.weight),
        targeting_tag(release.tier): None
        if release.targeting is None
        else json.dumps(release.targeting, sort_keys=True),
    }
    present = client.get_model_version(name, version).tags or {}
    for key, value in tags.items():
        if value is not None and present.get(key) != value:
            client.set_model_version_tag(name, version, key, value)
        elif value is None and key in present:
            client.delete_model_version_tag(name, version, key)
    set_alias(client, name, release.tier, version)
    if release.tier == "production":
        _drop_alias(client, name, version, "canary")


@contextmanager
def _aliases_locked(bridge: Bridge, *names: str) -> Iterator[None]:
    with bridge.conn.transaction():
        bundles.lock_aliases(bridge.conn, *names)
        yield


def _drop_alias(client: Any, name: str, version: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        holder = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return
    if str(holder.version) == str(version):
        client.delete_registered_model_alias(name, alias)


def _check(release: Release) -> None:
    if release.tier not in TIERS:
        raise ConfigError(f"--to {release.tier}: expected one of {', '.join(TIERS)}")
    if release.weight is not None and not 0 <= release.weight <= 100:
        raise ConfigError(f"--weight {release.weight}: a percentage of devices, 0 to 100")
    if release.force_reason is not None and not release.force_reason.strip():
        raise RegistryError(
            "--force needs a --reason: the audit log records why the gate was overridden"
        )
