"""Which bundle one device gets: targeting, tiers, weights and the bucketing that splits them.

Bucketing (stated so that an SDK in any language can match it; vectors in
``bucket_vectors.json``)::

    bucket = uint64_big_endian(sha256(utf8(policy_id + ":" + device_id))[0:8]) mod 10000

A policy's canary serves a device iff the device matches the canary's targeting and
``bucket < weight * 100`` (weight is a percentage, so buckets 0..weight*100-1); every other
device gets the production bundle, if its targeting matches. The bucket depends only on the
policy and the device, so raising a canary's weight from 10 to 50 keeps every device that
was in, and the canary and production ranges never overlap: one bundle per bucket.

Targeting is a JSON object; every key must match (an empty or null object matches all):

- ``customer_ids``, ``device_ids``, ``platforms``: the device's value is one of the list;
- ``min_app_version`` / ``max_app_version``, ``min_os_version`` / ``max_os_version``:
  dotted numeric versions compared part by part (``1.10`` > ``1.9``), bounds included;
- any other key (``{"region": ["eu"]}``): the device's query parameter of that name is one
  of the list (a device that does not send it does not match).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BUCKETS = 10_000
PLATFORM_FORMATS = {"ios": "coreml", "android": "tflite"}  # every other platform: onnx
PLATFORMS = ("android", "ios", "linux", "macos", "windows", "web")
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
_LISTS = {"customer_ids": "customer_id", "device_ids": "device_id", "platforms": "platform"}
_BOUNDS = {
    "min_app_version": ("app_version", 1),
    "max_app_version": ("app_version", -1),
    "min_os_version": ("os_version", 1),
    "max_os_version": ("os_version", -1),
}


def bucket(policy_id: str, device_id: str) -> int:
    digest = hashlib.sha256(f"{policy_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_canary(bucket_value: int, weight: int) -> bool:
    return bucket_value < weight * (BUCKETS // 100)


def parse_version(text: str) -> tuple[int, ...]:
    """``1.10.2`` -> (1, 10, 2); raises ValueError naming what a version looks like."""
    if not _VERSION.match(text):
        raise ValueError(f"'{text}' is not a dotted numeric version such as 1.4.2")
    return tuple(int(p) for p in text.split("."))


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    pa, pb = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (pa > pb) - (pa < pb)


@dataclass(frozen=True, kw_only=True)
class Device:
    policy_id: str
    device_id: str
    platform: str
    customer_id: str
    os_version: str | None = None
    app_version: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)  # other query parameters

    def value(self, name: str) -> str | None:
        if name in ("customer_id", "device_id", "platform", "os_version", "app_version"):
            found: str | None = getattr(self, name)
            return found
        return self.attributes.get(name)


def mismatch(targeting: Mapping[str, Any] | None, device: Device) -> str | None:
    """Why ``device`` is outside ``targeting`` (None: it matches)."""
    try:
        return _mismatch(targeting or {}, device)
    except ValueError as exc:  # a bound in the targeting that is not a version: serve no one
        return f"targeting is invalid ({exc})"


def _mismatch(targeting: Mapping[str, Any], device: Device) -> str | None:
    for key, want in sorted(targeting.items()):
        if key in _BOUNDS:
            attr, sign = _BOUNDS[key]
            have = device.value(attr)
            if have is None:
                return f"{key} {want}: the device sent no {attr}"
            if _cmp(parse_version(have), parse_version(str(want))) * sign < 0:
                return f"{attr} {have} is outside {key} {want}"
            continue
        attr = _LISTS.get(key, key)
        allowed = [str(v) for v in (want if isinstance(want, list) else [want])]
        have = device.value(attr)
        if have not in allowed:
            return f"{attr} {have!r} is not in {key} {allowed}"
    return None


def customer_visible(targeting: Mapping[str, Any] | None, customer_id: str) -> bool:
    """An API key sees its customer's targeted bundles and untargeted ones, no others."""
    customers = (targeting or {}).get("customer_ids")
    return customers is None or customer_id in [str(c) for c in customers]


@dataclass(frozen=True, kw_only=True)
class Choice:
    bundle: Any | None
    tier: str | None
    bucket: int
    reasons: tuple[str, ...]  # why each tier was or was not chosen


def choose(canary: Any | None, production: Any | None, device: Device) -> Choice:
    """The bundle for ``device`` from its policy's active canary and production (objects
    with ``weight`` and ``targeting``)."""
    b = bucket(device.policy_id, device.device_id)
    reasons = []
    if canary is not None:
        why = mismatch(canary.targeting, device)
        if why is None and in_canary(b, canary.weight):
            return Choice(bundle=canary, tier="canary", bucket=b, reasons=())
        reasons.append(f"canary: {why}" if why else f"canary: bucket {b} >= {canary.weight * 100}")
    if production is not None:
        why = mismatch(production.targeting, device)
        if why is None:
            return Choice(bundle=production, tier="production", bucket=b, reasons=tuple(reasons))
        reasons.append(f"production: {why}")
    else:
        reasons.append("production: no active bundle")
    return Choice(bundle=None, tier=None, bucket=b, reasons=tuple(reasons))


def formats_for(platform: str, requested: str | None) -> tuple[str, ...]:
    """The artifact formats a device gets: ``formats=`` if given, else its platform's."""
    if requested:
        return tuple(f.strip() for f in requested.split(",") if f.strip())
    return (PLATFORM_FORMATS.get(platform, "onnx"),)
