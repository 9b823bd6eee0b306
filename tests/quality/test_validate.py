"""The quality gate: a clean snapshot passes, and each planted integrity or leakage problem
fails it with a report that names the rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from modelyard.datasets import snapshot
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.quality import validate
from modelyard.quality.rules import ValidateParams

SUITES = Path(__file__).resolve().parents[2] / "expectations"


@pytest.fixture
def manifest(conn: Connection, demo_dataset: Dataset) -> pd.DataFrame:
    return snapshot.build(conn, demo_dataset, snapshot.SnapshotParams()).rows


def _run(
    frame: pd.DataFrame, tmp_path: Path | None = None, **params: object
) -> validate.QualityReport:
    return validate.validate(
        frame,
        dataset="demo",
        classes=("car", "person", "sign"),
        params=ValidateParams(**params),  # type: ignore[arg-type]
        suites_dir=SUITES,
        docs_dir=tmp_path / "docs" if tmp_path else None,
    )


def _first_row(frame: pd.DataFrame, split: str) -> int:
    return int(frame.index[frame["split"] == split][0])


def _group_leak(f: pd.DataFrame) -> str:
    i = _first_row(f, "test")
    f.loc[i, "split"] = "train"
    return str(f.loc[i, "image_path"])


def _sha_leak(f: pd.DataFrame) -> str:
    i, j = _first_row(f, "train"), _first_row(f, "test")
    f.loc[j, "image_sha256"] = f.loc[i, "image_sha256"]
    return str(f.loc[j, "image_path"])


def _near_duplicate(f: pd.DataFrame) -> str:
    i, j = _first_row(f, "train"), _first_row(f, "validation")
    f.loc[j, "image_dhash"] = f"{int(f.loc[i, 'image_dhash'], 16) ^ 0b101:016x}"  # 2 bits apart
    return str(f.loc[j, "image_path"])


def _box_outside(f: pd.DataFrame) -> str:
    f.loc[0, "objects"] = json.dumps([{"class": "car", "bbox": [50, 50, 40, 10]}])  # 64 px image
    return str(f.loc[0, "image_path"])


def _zero_area(f: pd.DataFrame) -> str:
    f.loc[1, "objects"] = json.dumps([{"class": "car", "bbox": [5, 5, 0, 10]}])
    return str(f.loc[1, "image_path"])


def _unknown_class(f: pd.DataFrame) -> str:
    f.loc[2, "objects"] = json.dumps([{"class": "tractor", "bbox": [1, 1, 5, 5]}])
    return str(f.loc[2, "image_path"])


def _crop_reversed(f: pd.DataFrame) -> str:
    f.loc[3, ["crop_x1", "crop_y1", "crop_x2", "crop_y2"]] = ["0.8", "0.1", "0.2", "0.9"]
    return str(f.loc[3, "image_path"])


def _crop_partial(f: pd.DataFrame) -> str:
    f.loc[4, ["crop_x1", "crop_y1"]] = ["0.1", "0.1"]
    return str(f.loc[4, "image_path"])


def _bad_split(f: pd.DataFrame) -> str:
    f.loc[5, "split"] = "holdout"
    return str(f.loc[5, "image_path"])


def _bad_review(f: pd.DataFrame) -> str:
    f.loc[6, "review_status"] = "maybe"
    return str(f.loc[6, "image_path"])


def _zero_width(f: pd.DataFrame) -> str:
    f.loc[7, "width"] = "0"
    return str(f.loc[7, "image_path"])


def _duplicate_id(f: pd.DataFrame) -> str:
    f.loc[8, "sample_id"] = f.loc[9, "sample_id"]
    return str(f.loc[8, "image_path"])


def _missing_id(f: pd.DataFrame) -> str:
    f.loc[10, "sample_id"] = ""
    return str(f.loc[10, "image_path"])


PLANTS: dict[str, tuple[Callable[[pd.DataFrame], str], str]] = {
    "group in two splits": (_group_leak, "leakage: group in one split"),
    "same image in two splits": (_sha_leak, "leakage: image in one split"),
    "near-duplicate across splits": (_near_duplicate, "leakage: no near-duplicate across splits"),
    "box outside the image": (_box_outside, "boxes inside the image"),
    "box without area": (_zero_area, "boxes inside the image"),
    "class not in ontology": (_unknown_class, "classes in the ontology"),
    "crop x1 > x2": (_crop_reversed, "crop normalised"),
    "crop partly given": (_crop_partial, "crop normalised"),
    "split not legal": (_bad_split, "split legal"),
    "review_status not legal": (_bad_review, "review_status legal"),
    "width zero": (_zero_width, "width positive"),
    "sample id duplicated": (_duplicate_id, "sample id unique"),
    "sample id missing": (_missing_id, "sample id present"),
}


@pytest.mark.postgres
def test_clean_snapshot_passes_and_writes_docs(manifest: pd.DataFrame, tmp_path: Path) -> None:
    report = _run(manifest, tmp_path)
    assert report.passed, [f.check for f in report.critical]
    assert (tmp_path / "docs" / "index.html").is_file()
    validate.write_report(report, tmp_path / "quality.json")
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["passed"] is True and data["rows_checked"] == len(manifest)


@pytest.mark.postgres
@pytest.mark.parametrize("kind", list(PLANTS))
def test_each_planted_problem_fails_the_gate_naming_the_row(
    manifest: pd.DataFrame, kind: str
) -> None:
    plant, check = PLANTS[kind]
    frame = manifest.copy()
    path = plant(frame)
    report = _run(frame)
    assert not report.passed
    failed = {f.check: f for f in report.critical}
    assert check in failed, sorted(failed)
    finding = failed[check]
    assert finding.fix
    if check not in ("sample id present",):
        assert path in {row.get("image_path") for row in finding.rows}


@pytest.mark.postgres
def test_class_missing_from_a_split_is_critical(manifest: pd.DataFrame) -> None:
    frame = manifest.copy()
    test_rows = frame["split"] == "test"
    frame.loc[test_rows, "objects"] = json.dumps([{"class": "car", "bbox": [1, 1, 5, 5]}])
    report = _run(frame)
    finding = next(f for f in report.critical if f.check.startswith("coverage: every class"))
    assert {"class": "person", "split": "test", "samples": 0} in finding.rows


@pytest.mark.postgres
def test_slice_value_missing_from_test_is_a_warning_that_passes(manifest: pd.DataFrame) -> None:
    frame = manifest.copy()
    i = _first_row(frame, "train")
    frame.loc[i, "metadata"] = json.dumps({"stream": "thermal"})
    report = _run(frame)
    assert report.passed
    warning = next(f for f in report.warnings if f.check == "coverage: every slice value in test")
    assert {"key": "stream", "value": "thermal", "test_samples": 0} in warning.rows


@pytest.mark.postgres
def test_a_manifest_file_checked_in_two_processes_matches_its_rows_in_one(
    manifest: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large manifest file is checked in two processes (forced here for a small one):
    every finding, and every row it names, is what the one-process check of its rows finds."""
    frame = manifest.copy()
    for plant in (_near_duplicate, _box_outside, _unknown_class, _group_leak):
        plant(frame)
    frame.loc[_first_row(frame, "train"), "metadata"] = json.dumps({"stream": "thermal"})
    path = tmp_path / "manifest_full.csv"
    frame.to_csv(path, index=False)
    in_one = _run(snapshot.read_manifest(path)).as_dict()
    monkeypatch.setattr(validate, "PARALLEL_MIN_BYTES", 0)
    in_two = validate.validate(
        path,
        dataset="demo",
        classes=("car", "person", "sign"),
        params=ValidateParams(),
        suites_dir=SUITES,
    ).as_dict()
    assert in_two == in_one
    failed = {c["check"] for c in in_two["checks"] if not c["success"]}
    assert {
        "leakage: no near-duplicate across splits",
        "boxes inside the image",
        "classes in the ontology",
        "leakage: group in one split",
        "coverage: every slice value in test",
    } <= failed
