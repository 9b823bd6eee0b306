"""Simulated devices: each one a ModelManager with a cache folder of its own, which checks for
its bundle, downloads and verifies it, and reports one telemetry window drawn from the
bundle's reference counts (``shifts`` moves a feature that many bins, up or down, for drift
experiments: ``{"brightness": -3}`` is a darker hour). What ``modelyard device simulate``
and the demo run."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelyard.errors import DeliveryError, IntegrityError
from modelyard.sdk import telemetry
from modelyard.sdk.manager import ModelManager

PLATFORMS = ("android", "ios", "linux")


@dataclass(frozen=True, kw_only=True)
class Fleet:
    base_url: str
    api_keys: Mapping[str, str]  # customer id -> its API key
    public_key: Path
    policy_id: str
    cache_root: Path
    platforms: Sequence[str] = PLATFORMS
    images_per_window: int = 50
    shifts: Mapping[str, int] = field(default_factory=dict)  # feature -> bins (+ up, - down)


@dataclass(frozen=True, kw_only=True)
class DeviceResult:
    device_id: str
    customer_id: str
    platform: str
    tier: str | None
    bundle_version: int | None
    files_verified: int
    bytes: int
    telemetry: str
    error: str | None


def device_ids(count: int, customers: Sequence[str]) -> list[tuple[str, str]]:
    """(device id, customer) for ``count`` devices spread over the customers in turn."""
    return [(f"{customers[i % len(customers)]}-dev-{i:04d}", customers[i % len(customers)])
            for i in range(count)]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """Devices that came out the same way: ``example`` is the first of them."""

    example: DeviceResult
    devices: int
    platforms: tuple[str, ...]


def outcomes(results: Sequence[DeviceResult]) -> list[Outcome]:
    """The results grouped by what happened, in first-seen order: the customer, the tier,
    bundle, files, size and telemetry, the error with its numbers (such as a bucket) left out,
    and the platform where a bundle was served (a refusal that names no platform is one
    outcome on every platform)."""
    groups: dict[tuple[object, ...], list[DeviceResult]] = {}
    for r in results:
        error = re.sub(r"\d+", "#", r.error.replace(r.device_id, "")) if r.error else None
        key = (r.customer_id, r.tier, r.bundle_version, r.files_verified, round(r.bytes / 1e5),
               r.telemetry, error, r.platform if r.tier else None)  # fmt: skip
        groups.setdefault(key, []).append(r)
    return [
        Outcome(example=g[0], devices=len(g), platforms=tuple(sorted({r.platform for r in g})))
        for g in groups.values()
    ]


def run(fleet: Fleet, count: int, window_end: datetime | None = None) -> list[DeviceResult]:
    end = (window_end or datetime.now(UTC)).replace(microsecond=0)
    results = []
    for i, (device_id, customer) in enumerate(device_ids(count, sorted(fleet.api_keys))):
        platform = fleet.platforms[i % len(fleet.platforms)]
        results.append(_one(fleet, device_id, customer, platform, end))
    return results


def _one(fleet: Fleet, device_id: str, customer: str, platform: str, end: datetime) -> DeviceResult:
    manager = ModelManager(
        fleet.base_url, fleet.api_keys[customer], fleet.cache_root / device_id,
        policy_id=fleet.policy_id, device_id=device_id, platform=platform,
        public_key=fleet.public_key,
    )  # fmt: skip
    try:
        bundle = manager.download()
        bundle.verify()
        latest = _latest(bundle.path)
        window = _window(fleet, device_id, bundle.bundle_id, latest["telemetry"], end)
        sent = manager.report(window)
        return DeviceResult(
            device_id=device_id, customer_id=customer, platform=platform, tier=bundle.tier,
            bundle_version=bundle.bundle_version, files_verified=len(bundle.files),
            bytes=sum(p.stat().st_size for p in bundle.files.values()),
            telemetry=str(sent["status"]), error=None,
        )  # fmt: skip
    except (DeliveryError, IntegrityError) as exc:
        return DeviceResult(
            device_id=device_id, customer_id=customer, platform=platform, tier=None,
            bundle_version=None, files_verified=0, bytes=0, telemetry="-", error=str(exc),
        )  # fmt: skip
    finally:
        manager.close()


def _latest(folder: Path) -> dict[str, Any]:
    import json

    latest: dict[str, Any] = json.loads((folder / "latest.json").read_text(encoding="utf-8"))
    return latest


def _window(
    fleet: Fleet, device_id: str, bundle_id: str, spec: dict[str, Any], end: datetime
) -> dict[str, Any]:
    rng = random.Random(f"{device_id}:{end.isoformat()}")  # noqa: S311 - a simulation
    n = fleet.images_per_window
    features = {}
    for name, feature in spec["features"].items():
        reference = feature["reference_counts"]
        per_image = name in spec["per_image"]
        total = n if per_image else round(n * sum(reference) / max(1, _images(spec)))
        features[name] = _draw(rng, feature["edges"], reference, total, fleet.shifts.get(name, 0))
    return telemetry.window(
        device_id=device_id, bundle_id=bundle_id, start=end - timedelta(hours=1), end=end,
        sample_count=n, features=features, spec=spec,
    )  # fmt: skip


def _images(spec: dict[str, Any]) -> int:
    for name in spec["per_image"]:
        return int(sum(spec["features"][name]["reference_counts"]))
    return 1


def _draw(
    rng: random.Random, edges: list[float], reference: list[int], total: int, shift: int
) -> list[float]:
    if not any(reference):
        return []
    picks = rng.choices(range(len(reference)), weights=reference, k=total)
    last = len(reference) - 1
    moved = [min(last, max(0, p + shift)) for p in picks]
    return [(edges[b] + edges[b + 1]) / 2 for b in moved]
