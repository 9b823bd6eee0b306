"""A snapshot: the dataset's rows, filtered by the export-time quality gates, as manifests.

``build`` reads the registry; ``write`` puts ``manifest_full.csv``,
``manifest_{train,validation,test}.csv``, ``excluded.csv`` and ``snapshot.json`` in a folder.
Manifests are sorted by image path with fixed columns and hold no timestamps, so the same
rows give the same bytes and the same ``content_hash`` — and DVC re-runs nothing downstream.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.datasets.records import REVIEW_STATUSES, SPLITS
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import ConfigError

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = tuple(name for name, _ in samples_db.MANIFEST_SELECT)
SNAPSHOT_SCHEMA = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BAD_PATH = re.compile(r"^$|^/|^[A-Za-z]:|\\|(?:^|/)\.\.(?:/|$)")


@dataclass(frozen=True, kw_only=True)
class SnapshotParams:
    """params.yaml ``snapshot``: which rows a snapshot keeps."""

    review_statuses: tuple[str, ...] = ("approved",)
    min_rating_count: int = 0

    def __post_init__(self) -> None:
        bad = sorted(set(self.review_statuses) - set(REVIEW_STATUSES))
        if bad:
            raise ConfigError(
                f"snapshot.review_statuses: '{bad[0]}' is not one of {', '.join(REVIEW_STATUSES)}"
            )
        if self.min_rating_count < 0:
            raise ConfigError("snapshot.min_rating_count: must be 0 or more")


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    dataset: Dataset
    params: SnapshotParams
    rows: pd.DataFrame  # MANIFEST_COLUMNS, all strings ('' for null), sorted by image_path
    excluded: pd.DataFrame  # sample_id, image_path, reason


def read_manifest(data: bytes | Path) -> pd.DataFrame:
    """A manifest CSV as strings ('' for empty), exactly as written."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False)


def build(conn: Connection, dataset: Dataset, params: SnapshotParams) -> Snapshot:
    """Read the dataset's samples and apply the export-time gates."""
    frame = read_manifest(samples_db.manifest_csv(conn, dataset.id))
    rows, excluded = apply_gates(frame, params)
    log.info("snapshot %s: %d rows kept, %d excluded", dataset.name, len(rows), len(excluded))
    return Snapshot(dataset=dataset, params=params, rows=rows, excluded=excluded)


def apply_gates(frame: pd.DataFrame, params: SnapshotParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into kept rows and excluded rows with the first reason that applies."""
    reason = pd.Series("", index=frame.index, dtype=object)

    def mark(mask: pd.Series, why: str) -> None:
        reason[mask & (reason == "")] = why

    mark(frame["sample_id"].duplicated(keep="first"), "duplicate sample id")
    mark(frame["image_path"].str.contains(_BAD_PATH), "missing or invalid image path")
    mark(~frame["image_sha256"].str.match(_SHA256), "missing or invalid image sha256")
    allowed = set(params.review_statuses)
    mark(~frame["review_status"].isin(allowed), f"review_status not in {sorted(allowed)}")
    if params.min_rating_count > 0:
        ratings = pd.to_numeric(frame["rating_count"], errors="coerce").fillna(0)
        mark(ratings < params.min_rating_count, f"rating_count below {params.min_rating_count}")
    keep = reason == ""
    excluded = frame.loc[~keep, ["sample_id", "image_path"]].assign(reason=reason[~keep])
    return frame.loc[keep].reset_index(drop=True), excluded.reset_index(drop=True)


def write(snapshot: Snapshot, out_dir: Path) -> dict[str, Any]:
    """Write the manifests and ``snapshot.json``; returns the snapshot.json content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = _csv_bytes(snapshot.rows)
    _write_atomic(out_dir / "manifest_full.csv", full)
    counts: dict[str, int] = {"full": len(snapshot.rows)}
    for split in SPLITS:
        part = snapshot.rows[snapshot.rows["split"] == split]
        _write_atomic(out_dir / f"manifest_{split}.csv", _csv_bytes(part))
        counts[split] = len(part)
    counts["unassigned"] = int((snapshot.rows["split"] == "").sum())
    _write_atomic(out_dir / "excluded.csv", _csv_bytes(snapshot.excluded))
    ds = snapshot.dataset
    info = {
        "schema": SNAPSHOT_SCHEMA,
        "dataset": {
            "id": str(ds.id),
            "policy_id": ds.policy_id,
            "name": ds.name,
            "classes": list(ds.classes),
            "ontology_version": ds.ontology_version,
        },
        "filters": {
            "review_statuses": list(snapshot.params.review_statuses),
            "min_rating_count": snapshot.params.min_rating_count,
        },
        "rows": counts,
        "excluded": snapshot.excluded["reason"].value_counts().sort_index().to_dict(),
        "content_hash": content_hash(full, ds.classes),
    }
    _write_atomic(out_dir / "snapshot.json", (json.dumps(info, indent=2) + "\n").encode())
    return info


def content_hash(manifest_full: bytes, classes: tuple[str, ...]) -> str:
    """sha256 over the full manifest and the class list: changes iff the content does."""
    h = hashlib.sha256(json.dumps(list(classes)).encode())
    h.update(manifest_full)
    return h.hexdigest()


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    text: str = frame.to_csv(index=False, lineterminator="\n")
    return text.encode()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
