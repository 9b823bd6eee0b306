"""The active bundles held in memory, as the device API serves them.

One query loads every active bundle with its training classes and promotion reference; the
table is reloaded when older than ``serve.cache_ttl_s`` (0: on every request), so a
promotion, a rollout or a rollback reaches devices within that many seconds. A response
body depends only on the bundle and the formats asked for, so it is rendered once per
(bundle, formats) and served as bytes with its ETag.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

FORMATS = ("coreml", "onnx", "tflite")
SUPPORT_ROLES = ("calibration", "classes")  # files every device gets beside its model
PER_IMAGE = (  # one value per photo (a crop proposer's box too)
    "confidence", "brightness", "contrast", "blur", "detections_per_image",
    "box_centre_x", "box_centre_y", "box_width", "box_height",
)  # fmt: skip


LEGACY_COREML = (
    "bundled before verification was recorded; CoreML parity is checked on macOS only: run "
    "`modelyard export verify --format coreml` on a Mac and register again"
)


def _verified(artifact: dict[str, Any]) -> bool:
    flag = artifact.get("verified")
    if flag is None:  # bundled before the flag: see Served.unverified
        return artifact.get("format") != "coreml"
    return bool(flag)


def artifact_url(bundle_id: uuid.UUID | str, name: str) -> str:
    return f"/api/v1/bundles/{bundle_id}/artifacts/{name}"


@dataclass(frozen=True, kw_only=True)
class Served:
    """One bundle as devices get it."""

    row: dict[str, Any]
    unservable: str | None  # why devices are not given it (unsigned), None when they are
    _bodies: dict[tuple[str, ...], tuple[bytes, str]] = field(default_factory=dict)

    @property
    def id(self) -> uuid.UUID:
        bundle_id: uuid.UUID = self.row["id"]
        return bundle_id

    @property
    def label(self) -> str:
        return f"{self.row['policy_id']}/v{self.row['bundle_version']}"

    @property
    def weight(self) -> int:
        return int(self.row["weight"] or 0)

    @property
    def targeting(self) -> dict[str, Any] | None:
        targeting: dict[str, Any] | None = self.row["targeting"]
        return targeting

    @property
    def formats(self) -> list[str]:
        return sorted({a["format"] for a in self.row["artifacts"] if a.get("role") == "model"})

    def unverified(self, fmt: str) -> str | None:
        """Why the format's model artifacts are unverified (their parity was never checked in
        their runtime); None when one of them is verified. A bundle made before the flag was
        recorded: its ONNX and TFLite passed parity to be exported at all, its CoreML did not
        (it was exported off macOS)."""
        mine = [
            a for a in self.row["artifacts"] if a.get("role") == "model" and a.get("format") == fmt
        ]
        if not mine or any(_verified(a) for a in mine):
            return None
        return str(mine[0].get("verification") or LEGACY_COREML)

    def artifact(self, name: str) -> dict[str, Any] | None:
        """The artifact called exactly ``name`` (never a path built from it)."""
        return next((a for a in self.row["artifacts"] if a["path"] == name), None)

    def telemetry_spec(self) -> dict[str, Any]:
        """The bin edges a device bins its telemetry on, and the promotion reference's counts
        on them (so a device, or a simulator, can compare its own window)."""
        reference = self.row.get("reference") or {}
        histograms = reference.get("histograms", {})
        features = {
            k: {"edges": v["edges"], "reference_counts": v["counts"]}
            for k, v in histograms.items()
            if "edges" in v
        }
        return {
            "features": features,
            "per_image": [f for f in PER_IMAGE if f in features],
            "classes": list(self.row.get("classes") or []),
        }

    def body(self, formats: tuple[str, ...]) -> tuple[bytes, str]:
        """The /latest body for these formats and its ETag (rendered once)."""
        cached = self._bodies.get(formats)
        if cached is None:
            data = orjson.dumps(self._document(formats))
            cached = (data, f'"{hashlib.sha256(data).hexdigest()[:32]}"')
            self._bodies[formats] = cached
        return cached

    def _document(self, formats: tuple[str, ...]) -> dict[str, Any]:
        row = self.row
        chosen = [
            a for a in row["artifacts"]
            if (a.get("role") == "model" and a.get("format") in formats)
            or a.get("role") in SUPPORT_ROLES
            or (a.get("role") == "manifest" and str(a["path"]).split("/")[0] in formats)
        ]  # fmt: skip
        return {
            "policy_id": row["policy_id"],
            "bundle_id": str(row["id"]),
            "bundle_version": row["bundle_version"],
            "bundle_tier": row["bundle_tier"],
            "bundle_hash": row["bundle_hash"],
            "ontology_version": row["ontology_version"],
            "schema_version": row["schema_version"],
            "policy_ast": row["policy_ast"],
            "artifacts": [
                {
                    "name": a["path"],
                    "role": a.get("role"),
                    "format": a.get("format"),
                    "precision": a.get("precision"),
                    "primary": bool(a.get("primary", False)),
                    **(
                        {
                            "verified": a.get("verified") is True,
                            "verification": a.get("verification"),
                        }
                        if a.get("role") == "model"
                        else {}
                    ),
                    "size_bytes": a["size_bytes"],
                    "sha256": a["sha256"],
                    "url": artifact_url(row["id"], a["path"]),
                }
                for a in sorted(chosen, key=lambda a: str(a["path"]))
            ],
            "manifest": row["manifest"],
            "signature": row["manifest_signature"],
            "key_id": row["signing_key_id"],
            "manifest_expires_at": row["manifest_expires_at"].isoformat(),
            "threshold": (row.get("reference") or {}).get("threshold"),
            "telemetry": self.telemetry_spec(),
        }


def served(row: dict[str, Any]) -> Served:
    unservable = None
    if row["manifest"] is None:
        unservable = (
            f"{row['policy_id']}/v{row['bundle_version']} is not signed yet; the operator "
            "runs `modelyard keys signing init` and `modelyard bridge sync`"
        )
    return Served(row=row, unservable=unservable)


class Catalog:
    """The active bundles by policy and tier, reloaded when older than ``ttl`` seconds."""

    def __init__(self, load: Callable[[], Iterable[dict[str, Any]]], ttl: float) -> None:
        self._load = load
        self.ttl = ttl
        self._lock = threading.Lock()
        self._by_policy: dict[str, dict[str, Served]] = {}
        self._by_id: dict[uuid.UUID, Served] = {}
        self.loaded_at = float("-inf")

    def reload(self) -> None:
        rows = list(self._load())
        with self._lock:
            old = self._by_id
            by_policy: dict[str, dict[str, Served]] = {}
            by_id: dict[uuid.UUID, Served] = {}
            for row in rows:
                keep = old.get(row["id"])
                item = keep if keep is not None and _same(keep.row, row) else served(row)
                by_policy.setdefault(row["policy_id"], {})[row["bundle_tier"]] = item
                by_id[row["id"]] = item
            self._by_policy, self._by_id = by_policy, by_id
            self.loaded_at = time.monotonic()

    def tiers(self, policy_id: str) -> dict[str, Served]:
        return self._by_policy.get(policy_id, {})

    def active(self, bundle_id: uuid.UUID) -> Served | None:
        return self._by_id.get(bundle_id)

    def policies(self) -> list[str]:
        return sorted(self._by_policy)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("bundle_tier", "weight", "targeting", "manifest_signature", "reference", "classes")
    return all(a.get(k) == b.get(k) for k in keys)
