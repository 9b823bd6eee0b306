"""The inspection report of a dataset: what is in it, and which rows are not valid now.

Stored rows are re-checked with the ingest checks (the ontology may have changed since, and
an image may have gone missing from the object store), and the rejections of the latest
ingest of each source are listed beside them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from modelyard.datasets import checks
from modelyard.datasets.images import ImageFacts
from modelyard.datasets.records import SourceRecord
from modelyard.db import ingests as ingests_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.storage import ObjectStore

FIRST_ROWS = 50
ROW_COLUMNS = (
    "id",
    "image_path",
    "image_sha256",
    "width",
    "height",
    "is_compliant",
    "annotations",
    "split",
    "review_status",
    "is_augmented",
    "augmentation_type",
    "group_key",
    "label_value",
    "label_source",
    "rating_count",
    "crop_x1",
    "crop_y1",
    "crop_x2",
    "crop_y2",
    "metadata",
)


def build_report(
    conn: Connection, store: ObjectStore, dataset: Dataset, first: int = FIRST_ROWS
) -> dict[str, Any]:
    rows = samples_db.all_rows(conn, dataset.id)
    return {
        "dataset": {
            "id": str(dataset.id),
            "policy_id": dataset.policy_id,
            "name": dataset.name,
            "status": dataset.status,
            "classes": list(dataset.classes),
            "ontology_version": dataset.ontology_version,
        },
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "samples": len(rows),
        "first_rows": [{c: repr(row[c]) for c in ROW_COLUMNS} for row in rows[:first]],
        "counts": _counts(rows),
        "invalid_rows": _invalid_rows(rows, dataset, store),
        "ingests": [_ingest_summary(run) for run in ingests_db.latest_per_source(conn, dataset.id)],
    }


def _counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    objects: Counter[str] = Counter()
    images_with: Counter[str] = Counter()
    for row in rows:
        names = [o.get("class") for o in row["annotations"].get("objects", [])]
        objects.update(names)
        images_with.update(set(names))

    def tally(key: str) -> dict[str, int]:
        counts = Counter("(none)" if row[key] is None else str(row[key]) for row in rows)
        return dict(sorted(counts.items()))

    return {
        "objects_by_class": dict(sorted(objects.items())),
        "images_by_class": dict(sorted(images_with.items())),
        "split": tally("split"),
        "review_status": tally("review_status"),
        "group_key": tally("group_key"),
        "is_compliant": tally("is_compliant"),
    }


def _as_record(row: dict[str, Any]) -> SourceRecord:
    crop = [row[f"crop_{k}"] for k in ("x1", "y1", "x2", "y2")]
    return SourceRecord(
        record=f"sample {row['id']}",
        image_path=row["image_path"],
        root=Path(),
        width=row["width"],
        height=row["height"],
        objects=[{**o, "format": "xywh"} for o in row["annotations"].get("objects", [])],
        is_compliant=row["is_compliant"],
        split=row["split"],
        review_status=row["review_status"],
        is_augmented=row["is_augmented"],
        augmentation_type=row["augmentation_type"],
        group_key=row["group_key"],
        label_value=row["label_value"],
        label_source=row["label_source"],
        rating_count=row["rating_count"],
        crop=None if crop[0] is None else crop,
        metadata=row["metadata"],
    )


def _invalid_rows(
    rows: list[dict[str, Any]], dataset: Dataset, store: ObjectStore
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        rec = _as_record(row)
        facts = ImageFacts(
            sha256=row["image_sha256"].strip(),
            width=row["width"],
            height=row["height"],
            format="",
            data=b"",
        )
        problems = [
            *checks.field_problems(rec, dataset.classes),
            *checks.image_problems(rec, facts),
        ]
        if not store.has_blob(facts.sha256):
            problems.append(
                rec.reject(
                    "image_sha256",
                    "image is missing from the object store",
                    "ingest the image again",
                )
            )
        out.extend({"sample_id": str(row["id"]), **p.as_dict()} for p in problems)
    return out


def _ingest_summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_format": run["source_format"],
        "source_path": run["source_path"],
        "finished_at": run["finished_at"].isoformat(timespec="seconds"),
        "records_seen": run["records_seen"],
        "inserted": run["inserted"],
        "unchanged": run["unchanged"],
        "rejected": run["rejected"],
        "rejections": run["rejections"],
    }
