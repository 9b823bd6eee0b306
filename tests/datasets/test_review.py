"""`review apply`: corrections go into a new dataset version; the parent is never edited."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from modelyard.datasets import review
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import IngestError, StateError

pytestmark = pytest.mark.postgres

COLUMNS = [
    "sample_id",
    "image_path",
    "split",
    "reason",
    "score",
    "field",
    "label",
    "prediction",
    "corrected_label",
    "note",
]


def worked(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A review.csv as `review build` writes it, with corrected_label filled in."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for image_path, field, corrected in rows:
            writer.writerow(
                {
                    "image_path": image_path,
                    "field": field,
                    "corrected_label": corrected,
                    "reason": "disagreement",
                }
            )
    return path


def images(conn: Connection, dataset: Dataset) -> list[str]:
    rows = conn.execute(
        "SELECT image_path FROM verify_ai_ml_samples WHERE dataset_id = %s ORDER BY image_path",
        (dataset.id,),
    ).fetchall()
    return [r["image_path"] for r in rows]


def sample(conn: Connection, dataset_id: object, image_path: str) -> dict:
    return conn.execute(
        "SELECT * FROM verify_ai_ml_samples WHERE dataset_id = %s AND image_path = %s",
        (dataset_id, image_path),
    ).fetchone()


def test_corrections_make_a_new_version_and_bad_rows_are_named(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    first, second, third, fourth = images(conn, demo_dataset)[:4]
    before = sample(conn, demo_dataset.id, first)
    fixed = [{"class": "car", "bbox": [10, 20, 30, 15]}]
    path = worked(
        tmp_path / "review.csv",
        [
            (first, "annotations", json.dumps(fixed)),
            (second, "annotations", json.dumps([{"class": "truck", "bbox": [1, 2, 3, 4]}])),
            (third, "annotations", ""),  # not reviewed
            (fourth, "is_compliant", "false"),
        ],
    )
    applied = review.apply(conn, demo_dataset, "demo-r1", path)
    assert applied.version == 2 and applied.corrected == 2 and applied.unreviewed == 1
    assert len(applied.rejected) == 1
    assert "line 3" in applied.rejected[0] and "'truck' is not one of" in applied.rejected[0]
    new = conn.execute(
        "SELECT * FROM verify_ai_ml_datasets WHERE id = %s", (applied.dataset_id,)
    ).fetchone()
    assert new["parent_id"] == demo_dataset.id and new["status"] == "collecting"
    assert applied.samples == len(images(conn, demo_dataset))
    corrected = sample(conn, applied.dataset_id, first)
    assert corrected["annotations"]["objects"] == [
        {"class": "car", "bbox": [10.0, 20.0, 30.0, 15.0]}
    ]
    assert corrected["label_source"] == "review" and corrected["review_status"] == "approved"
    assert corrected["split"] == before["split"] and corrected["group_key"] == before["group_key"]
    assert sample(conn, applied.dataset_id, fourth)["is_compliant"] is False
    assert sample(conn, demo_dataset.id, first) == before  # the parent is untouched


def test_nothing_is_written_when_the_version_cannot_be_made(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path
) -> None:
    first = images(conn, demo_dataset)[0]
    path = worked(tmp_path / "review.csv", [(first, "label_value", "4.5")])
    review.apply(conn, demo_dataset, "demo-r1", path)
    count = conn.execute("SELECT count(*) AS n FROM verify_ai_ml_samples").fetchone()["n"]
    with pytest.raises(StateError, match="already exists"):
        review.apply(conn, demo_dataset, "demo-r1", path)
    assert conn.execute("SELECT count(*) AS n FROM verify_ai_ml_samples").fetchone()["n"] == count


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("label_value", "7", "outside the rating scale 0-5"),
        ("is_compliant", "maybe", "is not true or false"),
        ("annotations", '[{"class": "car", "bbox": [1, 2, 0, 4]}]', "w, h > 0"),
        ("annotations", "car at 1,2", "is not JSON"),
        ("split", "test", "cannot be corrected"),
    ],
)
def test_no_usable_correction_is_an_error_naming_the_problem(
    conn: Connection, demo_dataset: Dataset, tmp_path: Path, field: str, text: str, message: str
) -> None:
    first = images(conn, demo_dataset)[0]
    path = worked(tmp_path / "review.csv", [(first, field, text)])
    with pytest.raises(IngestError, match=message):
        review.apply(conn, demo_dataset, "demo-r1", path)
    found = conn.execute("SELECT count(*) AS n FROM verify_ai_ml_datasets WHERE name = 'demo-r1'")
    assert found.fetchone()["n"] == 0
