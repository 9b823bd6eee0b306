"""The signed bundle manifest: what a device checks before it runs a bundle.

It names the bundle (id, policy, version, tier, content hash), every artifact (name, role,
format, precision, size, sha256, and for a model whether its parity was verified in its
runtime, and how), when it was issued and when it expires, and whether this
activation is an announced rollback (a device refuses a lower ``bundle_version`` than it
holds for the tier unless ``rollback`` is true). The bridge signs it whenever it activates
a bundle or moves it to another tier, and signs it again when fewer than half of its days
are left (``bridge sync`` runs hourly from cron, or ``bridge serve`` every minute).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.db import bundles
from modelyard.db.connection import Connection
from modelyard.signing import MANIFEST_SCHEMA, SigningKey, manifest_text

log = logging.getLogger(__name__)

TTL = timedelta(days=30)
ARTIFACT_FIELDS = (
    "role", "format", "precision", "size_bytes", "sha256", "primary", "batch", "verified",
    "verification",
)  # fmt: skip


def build(bundle: dict[str, Any], *, key_id: str, rollback: bool, now: datetime) -> dict[str, Any]:
    artifacts = [
        {"name": a["path"], **{k: a.get(k) for k in ARTIFACT_FIELDS}}
        for a in sorted(bundle["artifacts"], key=lambda a: str(a["path"]))
    ]
    return {
        "schema": MANIFEST_SCHEMA,
        "bundle_id": str(bundle["id"]),
        "policy_id": bundle["policy_id"],
        "bundle_version": bundle["bundle_version"],
        "bundle_tier": bundle["bundle_tier"],
        "bundle_hash": bundle["bundle_hash"],
        "ontology_version": bundle["ontology_version"],
        "schema_version": bundle["schema_version"],
        "rollback": rollback,
        "issued_at": now.isoformat(timespec="seconds"),
        "expires_at": (now + TTL).isoformat(timespec="seconds"),
        "key_id": key_id,
        "artifacts": artifacts,
    }


def sign(conn: Connection, bundle_id: Any, key: SigningKey, *, rollback: bool) -> dict[str, Any]:
    """Sign the bundle's manifest as the row now stands (tier included) and store it."""
    row = bundles.get(conn, str(bundle_id))
    manifest = build(row, key_id=key.key_id, rollback=rollback, now=datetime.now(UTC))
    text = manifest_text(manifest)
    bundles.set_manifest(
        conn, row["id"], text=text, signature=key.sign(text), key_id=key.key_id,
        expires_at=datetime.fromisoformat(manifest["expires_at"]),
    )  # fmt: skip
    return manifest


def needs_signing(bundle: dict[str, Any], key: SigningKey, now: datetime) -> str | None:
    """Why an active bundle's manifest must be signed again (None: it is fine)."""
    if bundle.get("manifest") is None:
        return "unsigned"
    if bundle["signing_key_id"] != key.key_id:
        return f"signed by key {bundle['signing_key_id']}, the key is now {key.key_id}"
    if bundle["manifest_expires_at"] - now < TTL / 2:
        return f"expires {bundle['manifest_expires_at']:%Y-%m-%d}"
    if json.loads(bundle["manifest"])["bundle_tier"] != bundle["bundle_tier"]:
        return "its tier changed"
    return None


def was_rollback(bundle: dict[str, Any]) -> bool:
    return bool(bundle.get("manifest")) and bool(json.loads(bundle["manifest"])["rollback"])
