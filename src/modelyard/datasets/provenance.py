"""The provenance helper training calls: which snapshot rows trained a model version."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelyard.datasets.snapshot import read_manifest
from modelyard.db import provenance as provenance_db
from modelyard.db.connection import Connection


def record_from_snapshot(
    conn: Connection,
    *,
    model_version: str,
    snapshot_dir: Path,
    splits: tuple[str, ...] = ("train", "validation"),
    export_params: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """Record that ``model_version`` was trained on the ``splits`` rows of the snapshot in
    ``snapshot_dir``; ``params_json`` holds the snapshot hash, its filters and the export
    parameters."""
    info = json.loads((snapshot_dir / "snapshot.json").read_text(encoding="utf-8"))
    used = []
    for split in splits:
        frame = read_manifest(snapshot_dir / f"manifest_{split}.csv")
        for row in frame.itertuples(index=False):
            value = float(row.label_value) if row.label_value != "" else None
            used.append(
                provenance_db.UsedSample(
                    sample_id=str(row.sample_id),
                    label_source=str(row.label_source) or None,
                    label_value=value,
                )
            )
    params = {
        "snapshot_hash": info["content_hash"],
        "dataset_id": info["dataset"]["id"],
        "snapshot_filters": info["filters"],
        "splits": list(splits),
        "export_params": dict(export_params or {}),
    }
    return provenance_db.record_training_run(
        conn, model_version=model_version, params_json=params, samples=used
    )
