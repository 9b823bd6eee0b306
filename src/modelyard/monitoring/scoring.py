"""``modelyard score``: new images scored with a released bundle through the SDK's Scorer,
every inference written to the history table with the image's latest score, so that the
drift job bins them beside device telemetry and a review cycle compares them with labels.

The bundle is laid out as a device holds it (``manifest.json``, ``latest.json``, ``files/``)
in a local cache, from the object store, each file's sha256 checked against the bundle row.
Images are read in batches; an image that cannot be read is reported and skipped, and every
batch is written in one transaction.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import shutil
import statistics
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from modelyard.db import bundles, inferences
from modelyard.db import drift as drift_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import NotFoundError, StorageError
from modelyard.export.manifest import sha256_path
from modelyard.sdk.scorer import Score, Scorer
from modelyard.storage import ObjectStore, sha256_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SUPPORT_ROLES = ("calibration", "classes")
Progress = Callable[[int, int], None]  # (images done, images in all)


@dataclass(frozen=True, kw_only=True)
class Item:
    """One image to score: where it is from, and how to read its bytes."""

    source: str
    read: Callable[[], bytes]
    sample_id: uuid.UUID | None = None


@dataclass(kw_only=True)
class Summary:
    bundle: str
    scored: int = 0
    positive: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "bundle": self.bundle,
            "scored": self.scored,
            "decided_positive": self.positive,
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "latency_ms": {
                "p50": round(statistics.median(lat), 2) if lat else None,
                "p95": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
            },
        }


def resolve(conn: Connection, ref: str) -> dict[str, Any]:
    """``POLICY/TIER`` (the active bundle of that tier) or ``POLICY/vN`` or a bundle id,
    with its promotion reference statistics as ``reference`` (None without)."""
    policy, _, tier = ref.partition("/")
    row = bundles.active(conn, policy, tier) if tier in ("canary", "production") else None
    if tier in ("canary", "production") and row is None:
        raise NotFoundError(f"--bundle {ref}: {policy} has no active {tier} bundle")
    row = row or bundles.get(conn, ref)
    promotion = drift_db.references(conn, [row["id"]]).get(row["id"])
    return row | {"reference": promotion["stats"] if promotion else None}


def fetch(store: ObjectStore, bundle: dict[str, Any], cache: Path, fmt: str) -> Path:
    """The bundle's ``fmt`` model, its format manifest and support files in
    ``cache/<bundle id>/`` as the SDK lays them out (reused when already there and intact)."""
    folder = cache / str(bundle["id"])
    wanted = [
        a for a in bundle["artifacts"]
        if (a.get("role") == "model" and a.get("format") == fmt and a.get("primary"))
        or a.get("role") in SUPPORT_ROLES
        or (a.get("role") == "manifest" and str(a["path"]).split("/")[0] == fmt)
    ]  # fmt: skip
    if not any(a.get("role") == "model" for a in wanted):
        formats = sorted(
            {str(a.get("format")) for a in bundle["artifacts"] if a.get("role") == "model"}
        )
        raise NotFoundError(
            f"{bundle['policy_id']}/v{bundle['bundle_version']} has no {fmt} model "
            f"(it has {', '.join(formats)}); choose one with --format"
        )
    if (folder / "latest.json").is_file() and all(
        _intact(folder / "files" / a["path"], a["sha256"]) for a in wanted
    ):
        return folder
    staging = cache / f".{bundle['id']}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    for artifact in wanted:
        target = staging / "files" / artifact["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get_object(artifact["storage_path"], artifact["sha256"]))
    manifest = bundle.get("manifest") or json.dumps(_manifest(bundle))
    (staging / "manifest.json").write_text(manifest, encoding="utf-8")
    reference = _reference(bundle)
    latest = {"bundle_id": str(bundle["id"]), "threshold": reference.get("threshold")}
    (staging / "latest.json").write_text(json.dumps(latest), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder


def from_folder(folder: Path) -> list[Item]:
    """Every image file under ``folder`` (by suffix), in path order."""
    if not folder.is_dir():
        raise NotFoundError(f"--images {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [Item(source=str(p), read=p.read_bytes) for p in files if p.is_file()]


def from_dataset(conn: Connection, store: ObjectStore, dataset: Dataset,
                 split: str | None = None) -> list[Item]:  # fmt: skip
    """Every sample of the dataset (of one split), its image from the object store."""
    rows = samples_db.all_rows(conn, dataset.id)
    return [
        Item(source=f"{dataset.name}:{r['image_path']}", sample_id=r["id"],
             read=functools.partial(store.get_blob, r["image_sha256"].strip()))
        for r in rows
        if split is None or r["split"] == split
    ]  # fmt: skip


def score(
    conn: Connection, scorer: Scorer, policy_id: str, items: Iterable[Item], *,
    batch_size: int = 16, progress: Progress | None = None, total: int = 0,
) -> Summary:  # fmt: skip
    """Score every item, writing each batch's inferences (and latest scores) in one
    transaction; unreadable images are reported in ``Summary.skipped``."""
    summary = Summary(bundle=scorer.model_version)
    bundle_id = uuid.UUID(scorer.bundle_id)
    done = 0
    for batch in _batches(items, batch_size):
        loaded: list[tuple[Item, str, Image.Image]] = []
        for item in batch:
            try:
                data = item.read()
                image = Image.open(io.BytesIO(data))
                image.load()
            except (OSError, UnidentifiedImageError, StorageError, ValueError) as exc:
                summary.skipped.append((item.source, _why(exc)))
                log.warning("%s: skipped, %s", item.source, _why(exc))
                continue
            loaded.append((item, sha256_bytes(data), image))
        results = scorer.score([image for _, _, image in loaded], batch_size=len(loaded) or 1)
        at = datetime.now(UTC)
        rows = [_row(item, sha, result, policy_id, bundle_id, at)
                for (item, sha, _), result in zip(loaded, results, strict=True)]  # fmt: skip
        inferences.store(conn, rows)
        summary.scored += len(rows)
        summary.positive += sum(r.decision for r in results)
        summary.latencies.extend(r.latency_ms for r in results)
        done += len(batch)
        if progress:
            progress(done, total)
    return summary


def _row(item: Item, sha: str, result: Score, policy_id: str, bundle_id: uuid.UUID,
         at: datetime) -> inferences.Inference:  # fmt: skip
    outputs = {"boxes": [{"xyxy": list(b.xyxy), "class": b.class_name, "raw_score": b.raw_score,
                          "score": b.score} for b in result.boxes]}  # fmt: skip
    return inferences.Inference(
        bundle_id=bundle_id, policy_id=policy_id, model_version=result.model_version,
        image_sha256=sha, sample_id=item.sample_id, source=item.source,
        raw_score=result.raw_score, score=result.score, decision=result.decision,
        threshold=result.threshold, outputs=outputs, confidence=result.confidence,
        brightness=result.brightness, contrast=result.contrast, blur=result.blur,
        detections=result.detections, scores=result.scores, predicted=result.predicted,
        latency_ms=result.latency_ms, scored_at=at,
    )  # fmt: skip


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _why(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image PIL can read (a truncated or non-image file); replace or remove it"
    return f"{type(exc).__name__}: {exc}"


def _manifest(bundle: dict[str, Any]) -> dict[str, Any]:
    """What the Scorer reads of a manifest, for a bundle not signed yet."""
    return {
        "bundle_id": str(bundle["id"]),
        "policy_id": bundle["policy_id"],
        "bundle_version": bundle["bundle_version"],
        "bundle_tier": bundle["bundle_tier"],
        "artifacts": [{"name": a["path"], **{k: a.get(k) for k in
                       ("role", "format", "primary", "size_bytes", "sha256")}}
                      for a in bundle["artifacts"]],
    }  # fmt: skip


def _reference(bundle: dict[str, Any]) -> dict[str, Any]:
    stats = bundle.get("reference")
    return stats if isinstance(stats, dict) else {}


def _intact(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_path(path) == sha256
