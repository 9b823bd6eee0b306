"""The bridge: converge ``verify_ai_model_bundles`` to the MLflow registry.

A version is promoted when it holds the alias ``canary`` or ``production`` — or, for the
legacy workflow, the stage ``Staging`` (canary) or ``Production`` (an alias wins over a
stage; a version holding both tiers is production). For each promoted version:

1. its registered files are downloaded, each checked against ``bundle.json`` and the listing
   against the version's ``bundle_hash`` tag; a gate report other than PASS is refused unless
   the promotion was forced (tag ``modelyard.force_reason``);
2. under the policy's advisory lock, one transaction inserts the bundle row, inactive, with the
   policy's next ``bundle_version`` (or finds the one this model version already has);
3. every artifact is written to ``verify-ai-models/<policy>/v<N>/...`` in the bucket and read
   back with its sha256 checked, then the row is marked verified;
4. the reference statistics (``snapshot_type='promotion'``) are measured with the exported
   model on the test split and stored (a photo-selection model's on its decisions dataset's
   test photos, ``monitoring.selection_reference``);
5. under the policy lock, with the registry read again, the tier's holder is activated (the
   bundle it replaces deactivated), and every change is written to the audit log;
6. each active bundle's manifest is signed (``manifest``) when it was activated or moved,
   is unsigned, or nears its expiry — when a signing key is configured; without one the
   bundle is active but the device API does not serve it.

Each step can be repeated, so a bridge killed at any point is finished by the next one; the
database trigger of migration 0010 refuses to activate a bundle without verified artifacts,
promotion statistics and a passed (or forced) gate, whatever code asks. Running the bridge
again with nothing changed in the registry writes nothing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from modelyard.db import bundles, models, samples
from modelyard.db import datasets as datasets_db
from modelyard.db.bundles import TIERS, NewBundle
from modelyard.db.connection import Connection
from modelyard.errors import (
    ConfigError,
    GateError,
    IntegrityError,
    ModelyardError,
    NotFoundError,
    RegistryError,
    StateError,
)
from modelyard.evaluation import gates
from modelyard.evaluation.run import summary
from modelyard.export.manifest import sha256_path
from modelyard.monitoring import reference, selection_reference
from modelyard.registry import manifest, selection
from modelyard.registry.register import SCHEMA_VERSION
from modelyard.selection import data as selection_data
from modelyard.signing import SigningKey
from modelyard.storage import ObjectStore, sha256_bytes
from modelyard.training.lineage import canonical_hash

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # logs, not a progress bar

BUCKET = "verify-ai-models"
TIER_OF_STAGE = {"Staging": "canary", "Production": "production"}
DEFAULT_WEIGHT = {"canary": 10, "production": 100}
TAG_FORCE_REASON = "modelyard.force_reason"
TAG_FORCED_BY = "modelyard.forced_by"
FAILPOINTS = "MODELYARD_FAILPOINTS"  # comma-separated step names at which to kill -9 (tests)


def weight_tag(tier: str) -> str:
    return f"modelyard.{tier}.weight"


def targeting_tag(tier: str) -> str:
    return f"modelyard.{tier}.targeting"


@dataclass(frozen=True, kw_only=True)
class Bridge:
    """What a sync works with."""

    conn: Connection
    client: Any  # MlflowClient
    store: ObjectStore
    policy_asts: Path  # <policy_id>.json files
    actor: str
    cause: str = "sync"  # sync | promote | rollout | rollback | webhook: recorded on events
    max_samples: int = 500  # test-split images the reference statistics are measured on
    signing: SigningKey | None = None  # None: bundles are activated unsigned (not served)


@dataclass(frozen=True, kw_only=True)
class Holder:
    """The registry's word: ``version`` of ``name`` holds ``tier``."""

    name: str
    version: str
    tier: str
    via: str  # alias | stage
    weight: int
    targeting: dict[str, Any] | None


@dataclass
class SyncReport:
    changes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {"changes": self.changes, "refused": self.refused, "failed": self.failed}


def sync(bridge: Bridge, model: str | None = None) -> SyncReport:
    """Converge every registered model (or just ``model``) to its aliases and stages."""
    report = SyncReport()
    for name in [model] if model else registered_models(bridge.client):
        sync_model(bridge, name, report)
    return report


def sync_model(
    bridge: Bridge, name: str, report: SyncReport, only: tuple[str, ...] | None = None
) -> SyncReport:
    """Prepare a bundle for every version of ``name`` that holds a tier (or for the versions
    ``only`` names: a promotion prepares its own version, whoever holds the tier by the time
    it is done), then activate the holders whose bundles are ready."""
    if only is None:
        versions = {h.version for h in holders(bridge.client, name).values()}
    else:
        versions = set(only)
    for version in sorted(versions, key=int):
        try:
            prepare(bridge, name, version, report)
        except GateError as exc:
            _refuse(bridge, name, version, str(exc))
            report.refused.append(f"{name} v{version}: {exc}")
        except ModelyardError as exc:
            log.error("%s v%s: %s", name, version, exc)
            report.failed.append(f"{name} v{version}: {exc}")
    converge(bridge, name, report)
    return report


def registered_models(client: Any) -> list[str]:
    names, token = [], None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        names += [m.name for m in page]
        token = page.token
        if not token:
            return sorted(names)


def holders(client: Any, name: str) -> dict[str, Holder]:
    """Which version holds which tier of ``name``: its alias, else the newest version in the
    tier's legacy stage."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise NotFoundError(f"registered model '{name}': {exc.message}") from exc
    staged: dict[str, Any] = {}
    for v in versions:
        tier = TIER_OF_STAGE.get(v.current_stage or "")
        if tier and (tier not in staged or int(v.version) > int(staged[tier].version)):
            staged[tier] = v
    by_version = {str(v.version): v for v in versions}
    found: dict[str, Holder] = {}
    for tier in TIERS:
        version = aliases.get(tier)
        via = "alias"
        if version is None and tier in staged:
            version, via = str(staged[tier].version), "stage"
        if version is None or str(version) not in by_version:
            continue
        tags = by_version[str(version)].tags or {}
        found[tier] = Holder(
            name=name, version=str(version), tier=tier, via=via,
            weight=int(tags.get(weight_tag(tier), DEFAULT_WEIGHT[tier])),
            targeting=json.loads(tags[targeting_tag(tier)]) if tags.get(targeting_tag(tier))
            else None,
        )  # fmt: skip
    both = "canary" in found and "production" in found
    if both and found["canary"].version == found["production"].version:
        del found["canary"]
    return found


def prepare(bridge: Bridge, name: str, version: str, report: SyncReport) -> dict[str, Any]:
    """Steps 1-4 for one model version: its bundle row, verified artifacts in the bucket and
    promotion statistics. Work already done (by this or another bridge) is skipped."""
    conn = bridge.conn
    row = bundles.for_model_version(conn, name, version)
    if row and row["artifacts_verified_at"] and bundles.has_promotion_stats(conn, row["id"]):
        return row
    mv = bridge.client.get_model_version(name, version)
    with tempfile.TemporaryDirectory(prefix="modelyard-bundle-") as tmp:
        folder = _download(mv, Path(tmp))
        listing = _verified_listing(folder, mv)
        gate = json.loads((folder / "gate.json").read_text(encoding="utf-8"))
        force_reason = (mv.tags or {}).get(TAG_FORCE_REASON) or None
        if gate["status"] != gates.PASS and not force_reason:
            raise GateError(
                f"gate {gate['status']} ({gate['summary']}); a version whose gate did not pass "
                "is not bundled. Fix the model, or `modelyard promote ... --force --reason` "
                "to ship it on the record"
            )
        if row is None:
            row = _reserve(bridge, mv, folder, listing, gate["status"], report)
        _failpoint("reserved")
        if row["artifacts_verified_at"] is None:
            upload(bridge.store, folder, row["artifacts"])
            _failpoint("uploaded")
            bundles.mark_verified(conn, row["id"])
            report.changes.append(f"{_label(row)}: {len(row['artifacts'])} artifacts verified")
        if not bundles.has_promotion_stats(conn, row["id"]):
            measured = _reference(bridge, folder, str(row["training_dataset_id"]))
            _failpoint("measured")
            if bundles.add_promotion_stats(conn, row["id"], measured.stats, measured.sample_count):
                report.changes.append(
                    f"{_label(row)}: reference statistics on {measured.sample_count} images"
                )
            _failpoint("stats_stored")
    return bundles.get(conn, str(row["id"]))


def converge(bridge: Bridge, name: str, report: SyncReport) -> None:
    """Step 5: with the policy locked and the registry read again, make the bundle table's
    active bundles of ``name`` the registry's holders (production first, so a bundle moving
    up from canary is never deactivated on the way)."""
    conn = bridge.conn
    policy_id = bundles.policy_of_model(conn, name)
    if policy_id is None:
        return
    with conn.transaction():
        bundles.lock_policy(conn, policy_id)
        held = holders(bridge.client, name)
        for tier in reversed(TIERS):
            holder = held.get(tier)
            current = bundles.active(conn, policy_id, tier)
            if holder is not None:
                _activate(bridge, holder, current, report)
            elif current is not None and current["mlflow_model_name"] == name:
                bundles.set_inactive(conn, current["id"])
                released = {"tier": tier, "reason": f"no version of {name} holds {tier}"}
                _event(bridge, current, "deactivated", released)
                report.changes.append(f"{_label(current)}: deactivated ({tier} released)")
        _sign_active(bridge, policy_id, report)


def _sign_active(bridge: Bridge, policy_id: str, report: SyncReport) -> None:
    """Step 6: sign every active bundle of the policy whose manifest is missing, stale (its
    tier moved), signed by another key, or half-way to its expiry."""
    now = datetime.now(UTC)
    for tier in TIERS:
        bundle = bundles.active(bridge.conn, policy_id, tier)
        if bundle is None:
            continue
        if bridge.signing is None:
            if bundle["manifest"] is None:
                log.warning(
                    "%s is active but unsigned: devices are not served it until "
                    "`modelyard keys signing init` and `modelyard bridge sync`",
                    _label(bundle),
                )
            continue
        why = manifest.needs_signing(bundle, bridge.signing, now)
        if why is None:
            continue
        _sign(bridge, bridge.signing, bundle, why, manifest.was_rollback(bundle), report)


def _sign(
    bridge: Bridge, key: SigningKey, bundle: dict[str, Any], why: str, rollback: bool,
    report: SyncReport,
) -> None:  # fmt: skip
    manifest.sign(bridge.conn, bundle["id"], key, rollback=rollback)
    details = {"tier": bundle["bundle_tier"], "why": why, "rollback": rollback,
               "key_id": key.key_id}  # fmt: skip
    _event(bridge, bundle, "signed", details)
    report.changes.append(f"{_label(bundle)}: manifest signed ({why})")


def _activate(
    bridge: Bridge, holder: Holder, current: dict[str, Any] | None, report: SyncReport
) -> None:
    conn = bridge.conn
    bundle = bundles.for_model_version(conn, holder.name, holder.version)
    if bundle is None or not _ready(conn, bundle):
        return  # not prepared (refused, failed, or still being prepared by another bridge)
    same = (
        bundle["is_active"]
        and bundle["bundle_tier"] == holder.tier
        and bundle["weight"] == holder.weight
        and bundle["targeting"] == holder.targeting
    )
    if same:
        return
    if current is not None and current["id"] != bundle["id"]:
        if current["mlflow_model_name"] != holder.name and _still_holds(
            bridge, current, holder.tier
        ):
            report.failed.append(
                f"{current['policy_id']} {holder.tier}: both {current['mlflow_model_name']} "
                f"v{current['mlflow_model_version']} and {holder.name} v{holder.version} hold it; "
                "remove one alias"
            )
            return
        bundles.set_inactive(conn, current["id"])
        _event(bridge, current, "superseded", {"tier": holder.tier, "by": bundle["bundle_version"]})
        report.changes.append(f"{_label(current)}: superseded in {holder.tier}")
    moved_from = bundle["bundle_tier"] if bundle["is_active"] else None
    reweighted = bundle["is_active"] and moved_from == holder.tier
    bundles.set_active(
        conn, bundle["id"], tier=holder.tier, weight=holder.weight, targeting=holder.targeting
    )
    details = {
        "tier": holder.tier, "weight": holder.weight, "targeting": holder.targeting,
        "via": holder.via, "from_tier": moved_from,
    }  # fmt: skip
    _event(bridge, bundle, "reweighted" if reweighted else "activated", details)
    report.changes.append(
        f"{_label(bundle)}: {'re-weighted' if reweighted else 'activated'} {holder.tier} "
        f"weight {holder.weight}"
    )
    if bridge.signing is not None and not reweighted:
        activated = bundles.get(conn, str(bundle["id"]))
        rollback = bridge.cause == "rollback"
        _sign(bridge, bridge.signing, activated, f"activated {holder.tier}", rollback, report)


def _still_holds(bridge: Bridge, bundle: dict[str, Any], tier: str) -> bool:
    try:
        holder = holders(bridge.client, bundle["mlflow_model_name"]).get(tier)
    except NotFoundError:
        return False
    return holder is not None and holder.version == bundle["mlflow_model_version"]


def _ready(conn: Connection, bundle: dict[str, Any]) -> bool:
    return bool(bundle["artifacts_verified_at"]) and bundles.has_promotion_stats(conn, bundle["id"])


def upload(store: ObjectStore, folder: Path, artifacts: list[dict[str, Any]]) -> None:
    """Every artifact to its ``storage_path``, read back and its sha256 checked; one already
    there and intact is left as it is."""
    for artifact in artifacts:
        local = folder / artifact["path"]
        if local.is_dir():  # a package folder (.mlpackage): each file under the folder's key
            for file in sorted(p for p in local.rglob("*") if p.is_file()):
                data = file.read_bytes()
                key = f"{artifact['storage_path']}/{file.relative_to(local).as_posix()}"
                _put_checked(store, key, data, sha256_bytes(data))
        else:
            _put_checked(store, artifact["storage_path"], local.read_bytes(), artifact["sha256"])


def _put_checked(store: ObjectStore, key: str, data: bytes, sha256: str) -> None:
    if sha256_bytes(data) != sha256:
        raise IntegrityError(f"{key}: the registered file's sha256 is not {sha256[:12]}...")
    try:
        store.get_object(key, sha256)
        return
    except (NotFoundError, IntegrityError):
        pass
    store.put_object(key, data)
    store.get_object(key, sha256)  # read back: raises IntegrityError on a mismatch


def load_policy_ast(folder: Path, policy_id: str) -> dict[str, Any]:
    path = folder / f"{policy_id}.json"
    if not path.is_file():
        raise ConfigError(
            f"{path}: no policy AST for policy '{policy_id}'; write the policy's rules as JSON "
            "there (see config/policy_asts/demo-policy.json) before promoting its models"
        )
    try:
        ast = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); fix the file") from exc
    if not isinstance(ast, dict):
        raise ConfigError(f"{path}: a policy AST is a JSON object, not {type(ast).__name__}")
    if ast.get("policy_id", policy_id) != policy_id:
        raise ConfigError(
            f"{path}: field policy_id is '{ast['policy_id']}', expected '{policy_id}'; "
            "fix the file's policy_id or its name"
        )
    return ast


def _download(mv: Any, into: Path) -> Path:
    from mlflow.artifacts import download_artifacts

    try:
        return Path(download_artifacts(artifact_uri=mv.source, dst_path=str(into)))
    except Exception as exc:  # MLflow's or the artifact store's error
        raise RegistryError(
            f"{mv.name} v{mv.version}: cannot download its files from {mv.source} ({exc})"
        ) from exc


def _verified_listing(folder: Path, mv: Any) -> dict[str, Any]:
    """``bundle.json``, after checking every file it lists and its own hash."""
    path = folder / "bundle.json"
    if not path.is_file():
        raise RegistryError(
            f"{mv.name} v{mv.version}: no bundle.json in {mv.source}; register it with "
            "`modelyard model register`"
        )
    listing: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    expected = (mv.tags or {}).get("bundle_hash")
    if expected and canonical_hash(listing)[:16] != expected:
        raise IntegrityError(
            f"{mv.name} v{mv.version}: bundle.json does not hash to the version's bundle_hash "
            f"{expected}; the registered files were changed — register the bundle again"
        )
    for item in listing["files"]:
        local = folder / item["path"]
        if not local.exists():
            raise IntegrityError(f"{mv.name} v{mv.version}: {item['path']} is missing")
        actual = sha256_path(local)
        if actual != item["sha256"]:
            raise IntegrityError(
                f"{mv.name} v{mv.version}: {item['path']} has sha256 {actual[:12]}..., "
                f"bundle.json says {item['sha256'][:12]}...; register the bundle again"
            )
    return listing


def _reserve(
    bridge: Bridge, mv: Any, folder: Path, listing: dict[str, Any], gate_status: str,
    report: SyncReport,
) -> dict[str, Any]:  # fmt: skip
    conn = bridge.conn
    tags = mv.tags or {}
    dataset_id = tags.get("dataset_id")
    if not dataset_id:
        raise RegistryError(
            f"{mv.name} v{mv.version}: no dataset_id tag, so no policy or test split; "
            "register it with `modelyard model register`"
        )
    dataset = datasets_db.find(conn, dataset_id)
    row = models.find(conn, mv.name, str(mv.version))
    evaluation = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
    own = folder / "bundle.json"
    files = [
        *listing["files"],
        {
            "path": own.name,
            "role": "listing",
            "sha256": sha256_path(own),
            "size_bytes": own.stat().st_size,
        },
    ]
    artifacts = [
        {
            **f,
            "architecture": evaluation["architecture"],
            "version": str(mv.version),
            "format": f.get("format"),
        }
        for f in files
    ]
    new = NewBundle(
        policy_id=dataset.policy_id,
        mlflow_model_name=mv.name,
        mlflow_model_version=str(mv.version),
        bundle_hash=tags.get("bundle_hash", canonical_hash(listing)[:16]),
        gate_status=gate_status,
        force_reason=tags.get(TAG_FORCE_REASON) or None,
        promoted_by=tags.get(TAG_FORCED_BY) or bridge.actor,
        ontology_version=(row or {}).get("ontology_version"),
        schema_version=SCHEMA_VERSION,
        policy_ast=load_policy_ast(bridge.policy_asts, dataset.policy_id),
        training_dataset_id=str(dataset.id),
        git_sha=tags.get("git_sha"),
        gold_eval_results=_gold(evaluation, gate_status),
    )
    found, created = bundles.reserve(
        conn, new, artifacts, f"{BUCKET}/{dataset.policy_id}/v{{version}}"
    )
    if created:
        report.changes.append(f"{_label(found)}: created for {mv.name} v{mv.version} (inactive)")
    return found


def _gold(evaluation: dict[str, Any], gate_status: str) -> dict[str, Any]:
    figures = (
        selection.gold(evaluation) if selection.is_selection(evaluation["task"])
        else summary(evaluation)
    )  # fmt: skip
    return {"gate_status": gate_status, "headline": evaluation["headline"], **figures}


def _reference(bridge: Bridge, folder: Path, dataset_id: str) -> reference.ReferenceStats:
    evaluation = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
    if selection.is_selection(evaluation["task"]):
        decisions = selection_data.load(bridge.conn, datasets_db.find(bridge.conn, dataset_id))
        return selection_reference.capture(
            folder, decisions.split("test"), bridge.store.get_blob, bridge.max_samples
        )
    rows = samples.of_split(bridge.conn, dataset_id, "test", bridge.max_samples)
    if not rows:
        raise StateError(
            f"dataset {dataset_id} has no approved test-split samples to measure reference "
            "statistics on; split it (`modelyard dataset split`) before promoting"
        )
    images = []
    for r in rows:
        data = bridge.store.get_blob(r["image_sha256"])
        with Image.open(io.BytesIO(data)) as img:
            objects = (r["annotations"] or {}).get("objects", [])
            images.append(
                reference.ReferenceImage(
                    sample_id=str(r["id"]),
                    image=img.convert("RGB"),
                    labels=tuple(str(o["class"]) for o in objects),
                )
            )
    return reference.capture(folder, images)


def _refuse(bridge: Bridge, name: str, version: str, reason: str) -> None:
    """A refused promotion goes in the audit log once (a re-run adds nothing)."""
    if not bundles.has_refusal(bridge.conn, name, version, reason):
        bundles.add_event(
            bridge.conn, None, "promotion_refused", bridge.actor,
            {"mlflow_model_name": name, "mlflow_model_version": version, "reason": reason,
             "cause": bridge.cause},
        )  # fmt: skip
    log.error("%s v%s refused: %s", name, version, reason)


def _event(bridge: Bridge, bundle: dict[str, Any], event: str, details: dict[str, Any]) -> None:
    bundles.add_event(
        bridge.conn, bundle["id"], event, bridge.actor,
        details | {"cause": bridge.cause, "mlflow_model_name": bundle["mlflow_model_name"],
                   "mlflow_model_version": bundle["mlflow_model_version"]},
    )  # fmt: skip


def _label(bundle: dict[str, Any]) -> str:
    return f"{bundle['policy_id']}/v{bundle['bundle_version']}"


def _failpoint(step: str) -> None:
    """Crash tests: kill this process (SIGKILL, as kill -9) when ``step`` is listed in
    MODELYARD_FAILPOINTS. Unset, it does nothing."""
    if step in os.environ.get(FAILPOINTS, "").split(","):
        log.warning("failpoint %s: killing the process", step)
        os.kill(os.getpid(), signal.SIGKILL)
