"""A review set on disk: ``review.csv``, one row per image with an empty
``corrected_label`` column that ``modelyard review apply`` reads, and ``review.json``, the
rows whole. Written by ``review build`` and ``review cycle`` alike; no model stack needed."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from modelyard.files import write_json

COLUMNS = ("sample_id", "image_path", "split", "reason", "score", "field", "label",
           "prediction", "corrected_label", "note")  # fmt: skip


def write(rows: list[dict[str, Any]], folder: Path) -> tuple[Path, Path]:
    """``review.csv`` (one row per image, ``corrected_label`` empty) and ``review.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "review.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({
                **{k: row.get(k, "") for k in COLUMNS},
                "label": json.dumps(row["label"]), "prediction": json.dumps(row["prediction"]),
                "corrected_label": "", "note": "",
            })  # fmt: skip
    full = folder / "review.json"
    write_json(full, {"rows": rows})
    return table, full
