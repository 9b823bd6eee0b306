"""verify_ai_model_bundles, their reference statistics and the append-only audit log.

The building blocks the bridge composes into transactions. Bundle versions are numbered per
policy under a transaction-scoped advisory lock (``lock_policy``), so concurrent bridges give
consecutive versions; the unique index on (mlflow_model_name, mlflow_model_version) keeps one
bundle per model version; the activation trigger (migration 0010) refuses a bundle whose
artifacts are unverified, whose promotion statistics are missing, or whose gate did not pass
unforced.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection, fetch_one
from modelyard.errors import NotFoundError

TIERS = ("canary", "production")
_REF = re.compile(r"^(?P<policy>[^/:\s]+)[/:]v?(?P<version>\d+)$")
_TIER_REF = re.compile(r"^(?P<policy>[^/:\s]+)/(?P<tier>canary|production)$")


@dataclass(frozen=True, kw_only=True)
class NewBundle:
    policy_id: str
    mlflow_model_name: str
    mlflow_model_version: str
    bundle_hash: str
    gate_status: str
    force_reason: str | None
    promoted_by: str
    ontology_version: str | None
    schema_version: str
    policy_ast: dict[str, Any]
    training_dataset_id: str | None
    git_sha: str | None
    gold_eval_results: dict[str, Any]


def lock_policy(conn: Connection, policy_id: str) -> None:
    """Serialise bundle numbering and tier changes of one policy until the transaction ends."""
    _xact_lock(conn, f"modelyard.bundles:{policy_id}")


def lock_aliases(conn: Connection, *model_names: str) -> None:
    """Serialise modelyard's alias changes on these registered models until the transaction
    ends. MLflow's store sets an alias by a read and then an insert, so two writers setting
    the same alias at once can both try the insert. Taken in name order: no deadlock."""
    for name in sorted(set(model_names)):
        _xact_lock(conn, f"modelyard.aliases:{name}")


def _xact_lock(conn: Connection, key: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


def for_model_version(conn: Connection, name: str, version: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "SELECT * FROM verify_ai_model_bundles "
        "WHERE mlflow_model_name = %s AND mlflow_model_version = %s",
        (name, version),
    ).fetchone()
    return row


def reserve(
    conn: Connection, new: NewBundle, artifacts: list[dict[str, Any]], storage_prefix: str
) -> tuple[dict[str, Any], bool]:
    """The bundle of the model version, inserted inactive with the policy's next version if
    there is none yet; ``storage_prefix`` is formatted with ``version`` to give each artifact's
    ``storage_path``. Returns (row, created)."""
    with conn.transaction():
        lock_policy(conn, new.policy_id)
        found = for_model_version(conn, new.mlflow_model_name, new.mlflow_model_version)
        if found is not None:
            return found, False
        version = fetch_one(
            conn.execute(
                "SELECT coalesce(max(bundle_version), 0) + 1 AS next "
                "FROM verify_ai_model_bundles WHERE policy_id = %s",
                (new.policy_id,),
            )
        )["next"]
        prefix = storage_prefix.format(version=version)
        placed = [a | {"storage_path": f"{prefix}/{a['path']}"} for a in artifacts]
        row = fetch_one(
            conn.execute(
                "INSERT INTO verify_ai_model_bundles (policy_id, bundle_version, ontology_version, "
                "schema_version, policy_ast, artifacts, training_dataset_id, git_sha, "
                "gold_eval_results, mlflow_model_name, mlflow_model_version, gate_status, "
                "force_reason, promoted_by, bundle_hash) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    new.policy_id,
                    version,
                    new.ontology_version,
                    new.schema_version,
                    Jsonb(new.policy_ast),
                    Jsonb(placed),
                    new.training_dataset_id,
                    new.git_sha,
                    Jsonb(new.gold_eval_results),
                    new.mlflow_model_name,
                    new.mlflow_model_version,
                    new.gate_status,
                    new.force_reason,
                    new.promoted_by,
                    new.bundle_hash,
                ),
            )
        )
        details = {
            "mlflow_model_name": new.mlflow_model_name,
            "mlflow_model_version": new.mlflow_model_version,
            "gate_status": new.gate_status,
        }
        add_event(conn, row["id"], "created", new.promoted_by, details)
        if new.force_reason:
            add_event(
                conn, row["id"], "forced", new.promoted_by, details | {"reason": new.force_reason}
            )
    return row, True


def mark_verified(conn: Connection, bundle_id: uuid.UUID) -> None:
    conn.execute(
        "UPDATE verify_ai_model_bundles SET artifacts_verified_at = now() "
        "WHERE id = %s AND artifacts_verified_at IS NULL",
        (bundle_id,),
    )


def has_promotion_stats(conn: Connection, bundle_id: uuid.UUID) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM verify_ai_model_reference_stats "
            "WHERE bundle_id = %s AND snapshot_type = 'promotion'",
            (bundle_id,),
        ).fetchone()
        is not None
    )


def add_promotion_stats(
    conn: Connection, bundle_id: uuid.UUID, stats: Mapping[str, Any], sample_count: int
) -> bool:
    """Store the bundle's promotion reference statistics unless a concurrent bridge did first."""
    with conn.transaction():
        conn.execute(
            "SELECT id FROM verify_ai_model_bundles WHERE id = %s FOR UPDATE", (bundle_id,)
        )
        if has_promotion_stats(conn, bundle_id):
            return False
        conn.execute(
            "INSERT INTO verify_ai_model_reference_stats (bundle_id, snapshot_type, stats, "
            "sample_count) VALUES (%s, 'promotion', %s, %s)",
            (bundle_id, Jsonb(dict(stats)), sample_count),
        )
    return True


def active(conn: Connection, policy_id: str, tier: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "SELECT * FROM verify_ai_model_bundles WHERE policy_id = %s AND bundle_tier = %s "
        "AND is_active",
        (policy_id, tier),
    ).fetchone()
    return row


def policy_of_model(conn: Connection, name: str) -> str | None:
    """The policy whose bundles registered model ``name`` fills (None: it has none yet)."""
    row = conn.execute(
        "SELECT policy_id FROM verify_ai_model_bundles WHERE mlflow_model_name = %s LIMIT 1",
        (name,),
    ).fetchone()
    return None if row is None else str(row["policy_id"])


def set_active(
    conn: Connection, bundle_id: uuid.UUID, *, tier: str, weight: int,
    targeting: Mapping[str, Any] | None,
) -> None:  # fmt: skip
    """Activate (or re-tier, re-weight) a bundle; the caller holds the policy lock and has
    deactivated whatever held the tier."""
    conn.execute(
        "UPDATE verify_ai_model_bundles SET is_active = true, bundle_tier = %s, weight = %s, "
        "targeting = %s, activated_at = CASE WHEN is_active AND bundle_tier = %s "
        "THEN activated_at ELSE now() END WHERE id = %s",
        (tier, weight, Jsonb(dict(targeting)) if targeting is not None else None, tier, bundle_id),
    )


def set_inactive(conn: Connection, bundle_id: uuid.UUID) -> None:
    conn.execute("UPDATE verify_ai_model_bundles SET is_active = false WHERE id = %s", (bundle_id,))


def add_event(
    conn: Connection, bundle_id: uuid.UUID | None, event: str, actor: str,
    details: Mapping[str, Any],
) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO verify_ai_bundle_events (bundle_id, event, actor, details) "
        "VALUES (%s, %s, %s, %s)",
        (bundle_id, event, actor, Jsonb(dict(details))),
    )


def has_refusal(conn: Connection, name: str, version: str, reason: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM verify_ai_bundle_events WHERE event = 'promotion_refused' "
            "AND details->>'mlflow_model_name' = %s AND details->>'mlflow_model_version' = %s "
            "AND details->>'reason' = %s",
            (name, version, reason),
        ).fetchone()
        is not None
    )


def previous_in_tier(
    conn: Connection, policy_id: str, tier: str, current: uuid.UUID
) -> dict[str, Any] | None:
    """The bundle that held ``tier`` before ``current``: the latest activated in that tier,
    other than ``current``, and not rolled back since."""
    row: dict[str, Any] | None = conn.execute(
        "SELECT b.* FROM verify_ai_bundle_events e "
        "JOIN verify_ai_model_bundles b ON b.id = e.bundle_id "
        "WHERE b.policy_id = %s AND e.event = 'activated' AND e.details->>'tier' = %s "
        "AND b.id <> %s AND NOT EXISTS (SELECT 1 FROM verify_ai_bundle_events r "
        "WHERE r.bundle_id = e.bundle_id AND r.event = 'rolled_back' AND r.id > e.id) "
        "ORDER BY e.id DESC LIMIT 1",
        (policy_id, tier, current),
    ).fetchone()
    return row


def get(conn: Connection, ref: str) -> dict[str, Any]:
    """A bundle by id, by ``<policy>/v<N>`` (also ``<policy>:<N>``), or the active one of a
    tier, ``<policy>/canary`` or ``<policy>/production``."""
    row: dict[str, Any] | None
    match = _REF.match(ref.strip())
    tier = _TIER_REF.match(ref.strip())
    if tier:
        row = active(conn, tier["policy"], tier["tier"])
    elif match:
        row = conn.execute(
            "SELECT * FROM verify_ai_model_bundles WHERE policy_id = %s AND bundle_version = %s",
            (match["policy"], int(match["version"])),
        ).fetchone()
    else:
        try:
            bundle_id = uuid.UUID(ref)
        except ValueError:
            raise NotFoundError(
                f"bundle '{ref}': not an id, <policy>/v<N> or <policy>/<tier>; "
                "`modelyard bundles list` shows them"
            ) from None
        row = conn.execute(
            "SELECT * FROM verify_ai_model_bundles WHERE id = %s", (bundle_id,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"bundle '{ref}': no such bundle; `modelyard bundles list` shows them")
    return row


def list_all(conn: Connection, policy_id: str | None = None) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT b.*, EXISTS (SELECT 1 FROM verify_ai_model_reference_stats s "
        "WHERE s.bundle_id = b.id AND s.snapshot_type = 'promotion') AS has_reference "
        "FROM verify_ai_model_bundles b WHERE %(policy)s::text IS NULL OR b.policy_id = %(policy)s "
        "ORDER BY b.policy_id, b.bundle_version",
        {"policy": policy_id},
    ).fetchall()


def events(
    conn: Connection, *, bundle_id: uuid.UUID | None = None, policy_id: str | None = None
) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT e.*, b.policy_id, b.bundle_version FROM verify_ai_bundle_events e "
        "LEFT JOIN verify_ai_model_bundles b ON b.id = e.bundle_id "
        "WHERE (%(bundle)s::uuid IS NULL OR e.bundle_id = %(bundle)s) "
        "AND (%(policy)s::text IS NULL OR b.policy_id = %(policy)s "
        "OR e.details->>'policy_id' = %(policy)s) ORDER BY e.id",
        {"bundle": bundle_id, "policy": policy_id},
    ).fetchall()


def reference_stats(conn: Connection, bundle_id: uuid.UUID) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT * FROM verify_ai_model_reference_stats WHERE bundle_id = %s ORDER BY created_at",
        (bundle_id,),
    ).fetchall()


def set_manifest(
    conn: Connection, bundle_id: uuid.UUID, *, text: str, signature: str, key_id: str,
    expires_at: Any,
) -> None:  # fmt: skip
    conn.execute(
        "UPDATE verify_ai_model_bundles SET manifest = %s, manifest_signature = %s, "
        "signing_key_id = %s, manifest_expires_at = %s WHERE id = %s",
        (text, signature, key_id, expires_at, bundle_id),
    )


SERVING_QUERY = """
SELECT b.id, b.policy_id, b.bundle_version, b.bundle_tier, b.weight, b.targeting,
       b.ontology_version, b.schema_version, b.policy_ast, b.artifacts, b.bundle_hash,
       b.manifest, b.manifest_signature, b.signing_key_id, b.manifest_expires_at, b.is_active,
       d.classes,
       (SELECT s.stats FROM verify_ai_model_reference_stats s
         WHERE s.bundle_id = b.id AND s.snapshot_type = 'promotion'
         ORDER BY s.created_at LIMIT 1) AS reference
FROM verify_ai_model_bundles b
LEFT JOIN verify_ai_ml_datasets d ON d.id = b.training_dataset_id
"""


def serving(conn: Connection) -> list[dict[str, Any]]:
    """The active bundles as the device API serves them: with their training classes and
    promotion reference statistics."""
    return conn.execute(SERVING_QUERY + " WHERE b.is_active ORDER BY b.policy_id").fetchall()


def serving_one(conn: Connection, bundle_id: uuid.UUID) -> dict[str, Any] | None:
    """One bundle, active or not, in the form ``serving`` gives (a device may still report
    on, or finish downloading, the bundle it had before a swap)."""
    row: dict[str, Any] | None = conn.execute(
        SERVING_QUERY + " WHERE b.id = %s", (bundle_id,)
    ).fetchone()
    return row
