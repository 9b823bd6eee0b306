"""`modelyard dataset ready`: the validate stage's suites, run on what a snapshot would hold now."""

from __future__ import annotations

from pathlib import Path

from modelyard.config import load_params, section
from modelyard.datasets import snapshot
from modelyard.datasets.snapshot import SnapshotParams
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.quality import validate
from modelyard.quality.rules import ValidateParams


def load_settings(params_path: Path) -> tuple[SnapshotParams, ValidateParams]:
    """The ``snapshot`` and ``validate`` sections of params.yaml, or their defaults."""
    if not params_path.is_file():
        return SnapshotParams(), ValidateParams()
    params = load_params(params_path)
    snap = section(params, "snapshot", SnapshotParams) if "snapshot" in params else None
    check = section(params, "validate", ValidateParams) if "validate" in params else None
    return snap or SnapshotParams(), check or ValidateParams()


def check(
    conn: Connection,
    dataset: Dataset,
    snapshot_params: SnapshotParams,
    validate_params: ValidateParams,
    suites_dir: Path,
) -> validate.QualityReport:
    snap = snapshot.build(conn, dataset, snapshot_params)
    return validate.validate(
        snap.rows,
        dataset=dataset.name,
        classes=dataset.classes,
        params=validate_params,
        suites_dir=suites_dir,
    )
