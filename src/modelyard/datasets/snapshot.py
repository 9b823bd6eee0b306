"""A snapshot: the dataset's rows, filtered by the export-time quality gates, as manifests.

``build`` reads the registry (the gates run in SQL, the CSV comes straight from COPY);
``write`` puts ``manifest_full.csv``, ``manifest_{train,validation,test}.csv``,
``excluded.csv`` (each excluded row and its reason) and ``snapshot.json`` in a folder.
Manifests are sorted by image path (byte order) with fixed columns and hold no timestamps, so
the same rows give the same bytes and the same ``content_hash`` — and DVC re-runs nothing
downstream. Ids are unique by the table's primary key; the validate suite checks it again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.datasets.records import REVIEW_STATUSES, SPLITS
from modelyard.db import snapshots as snapshots_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import ConfigError
from modelyard.files import write_atomic, write_json

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = snapshots_db.MANIFEST_COLUMNS
SPLIT_CODES = snapshots_db.SPLIT_CODES
SNAPSHOT_SCHEMA = 1


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


@dataclass(kw_only=True)
class Snapshot:
    """The manifests as bytes (CSV from the database) and their counts."""

    dataset: Dataset
    params: SnapshotParams
    full: bytes
    by_split: dict[str, bytes]
    excluded: bytes
    counts: dict[str, dict[str, int]]
    _rows: pd.DataFrame | None = None

    @property
    def rows(self) -> pd.DataFrame:
        """The full manifest as strings ('' for null), parsed once."""
        if self._rows is None:
            self._rows = read_manifest(self.full)
        return self._rows


def read_manifest(data: bytes | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A manifest CSV as strings ('' for empty), exactly as written (only ``columns``, when
    given)."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False, usecols=columns)


def build(conn: Connection, dataset: Dataset, params: SnapshotParams) -> Snapshot:
    """Read the dataset's rows that pass the export-time gates, and those that do not."""
    gates = snapshots_db.Gates(
        review_statuses=params.review_statuses, min_rating_count=params.min_rating_count
    )
    with conn.transaction():  # one consistent view of the rows for every file
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows = snapshots_db.dataset_rows(conn, dataset.id, gates)
    codes = rows.codes
    reasons = gates.reasons()
    code_bytes = np.frombuffer(codes.encode("ascii"), dtype=np.uint8)

    def among(letters: Iterable[str]) -> np.ndarray:
        return np.isin(code_bytes, np.frombuffer("".join(letters).encode("ascii"), np.uint8))

    def manifest(keep: np.ndarray) -> bytes:
        kept = list(compress(rows.lines, keep.tolist()))
        return rows.header + b"\n".join(kept) + (b"\n" if kept else b"")

    full = manifest(among(SPLIT_CODES))
    by_split = {
        split: manifest(among(code)) for code, split in SPLIT_CODES.items() if split is not None
    }
    letters = Counter(codes)
    kept = {split or "": letters.get(code, 0) for code, split in SPLIT_CODES.items()}
    excluded = _excluded_csv(rows.lines, codes, np.flatnonzero(among(reasons)), reasons)
    log.info(
        "snapshot %s: %d rows kept, %d excluded",
        dataset.name,
        sum(kept.values()),
        len(codes) - sum(kept.values()),
    )
    return Snapshot(
        dataset=dataset,
        params=params,
        full=full,
        by_split=by_split,
        excluded=excluded,
        counts={
            "kept": kept,
            "excluded": dict(sorted((reasons[c], n) for c, n in letters.items() if c in reasons)),
        },
    )


def _excluded_csv(
    lines: list[bytes], codes: str, excluded: np.ndarray, reasons: dict[str, str]
) -> bytes:
    """sample_id, image_path, reason of every excluded row (``excluded``: their positions,
    in path order)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("sample_id", "image_path", "reason"))
    for i in excluded.tolist():
        sample_id, image_path = next(csv.reader([lines[i].decode() + "\n"]))[:2]
        writer.writerow((sample_id, image_path, reasons[codes[i]]))
    return out.getvalue().encode()


def write(snapshot: Snapshot, out_dir: Path) -> dict[str, Any]:
    """Write the manifests and ``snapshot.json``; returns the snapshot.json content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "manifest_full.csv", snapshot.full)
    for split, data in snapshot.by_split.items():
        write_atomic(out_dir / f"manifest_{split}.csv", data)
    write_atomic(out_dir / "excluded.csv", snapshot.excluded)
    kept = snapshot.counts["kept"]
    rows = {"full": sum(kept.values()), **{s: kept.get(s, 0) for s in SPLITS}}
    rows["unassigned"] = kept.get("", 0)
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
        "rows": rows,
        "excluded": snapshot.counts["excluded"],
        "content_hash": content_hash(snapshot.full, ds.classes),
    }
    write_json(out_dir / "snapshot.json", info)
    return info


def content_hash(manifest_full: bytes, classes: tuple[str, ...]) -> str:
    """sha256 over the full manifest and the class list: changes iff the content does."""
    h = hashlib.sha256(json.dumps(list(classes)).encode())
    h.update(manifest_full)
    return h.hexdigest()
