"""The quality gate over one snapshot: derive the checked columns, run the suites, report.

Critical findings fail the gate; warnings are reported and pass. The same function backs the
``validate`` DVC stage (on the manifest files) and ``modelyard dataset ready`` (on the rows the
snapshot would export now).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from modelyard.datasets.snapshot import read_manifest
from modelyard.errors import ConfigError
from modelyard.files import write_json
from modelyard.quality import rules
from modelyard.quality.expectations import Finding, SuiteRun, preload, run_suites
from modelyard.quality.rules import ValidateParams

log = logging.getLogger(__name__)

SUITES = ("samples", "class_coverage", "slice_coverage")
REPORT_SCHEMA = 1
_ID_COLUMNS = {
    "samples": ("sample_id", "image_path", "split", "group_key", "near_duplicate_of"),
    "class_coverage": ("class", "split"),
    "slice_coverage": ("key", "value"),
}


@dataclass(kw_only=True)
class QualityReport:
    dataset: str
    rows_checked: int
    findings: list[Finding]
    params: ValidateParams
    docs: str | None = None

    @property
    def critical(self) -> list[Finding]:
        return [f for f in self.findings if not f.success and f.severity == "critical"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.success and f.severity != "critical"]

    @property
    def passed(self) -> bool:
        return not self.critical

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "dataset": self.dataset,
            "passed": self.passed,
            "critical_failures": len(self.critical),
            "warnings": len(self.warnings),
            "rows_checked": self.rows_checked,
            "params": {
                "near_duplicate_hamming": self.params.near_duplicate_hamming,
                "min_samples_per_class": self.params.min_samples_per_class,
                "slice_keys": list(self.params.slice_keys),
            },
            "data_docs": self.docs,
            "checks": [f.as_dict() for f in self.findings],
        }


def validate(
    manifest: pd.DataFrame | Path,
    *,
    dataset: str,
    classes: tuple[str, ...],
    params: ValidateParams,
    suites_dir: Path,
    docs_dir: Path | None = None,
) -> QualityReport:
    """Run every suite of ``suites_dir`` on ``manifest``: a manifest file, or its rows
    (all-string snapshot columns)."""
    missing = [s for s in SUITES if not (suites_dir / f"{s}.json").is_file()]
    if missing:
        raise ConfigError(
            f"expectation suites not found in {suites_dir}: {', '.join(missing)} "
            "(run from the project root, or pass the folder that holds them)"
        )
    if isinstance(manifest, Path):
        with _beside(_objects_and_slices_of_file, manifest, classes, params.slice_keys) as half:
            manifest = read_manifest(manifest)
            preload()
            samples = rules.sample_facts(manifest, params)
            objects, slices = half()
    else:
        objects, slices = _objects_and_slices(manifest, classes, params.slice_keys)
        samples = rules.sample_facts(manifest, params)
    frames = {
        "samples": rules.with_object_facts(samples, objects),
        "class_coverage": objects.class_coverage,
        "slice_coverage": slices,
    }
    runs = [
        SuiteRun(path=suites_dir / f"{name}.json", frame=frames[name], id_columns=_ID_COLUMNS[name])
        for name in SUITES
    ]
    findings = run_suites(runs, {"min_samples_per_class": params.min_samples_per_class}, docs_dir)
    report = QualityReport(
        dataset=dataset,
        rows_checked=len(manifest),
        findings=findings,
        params=params,
        docs=str(docs_dir / "index.html") if docs_dir is not None else None,
    )
    log.info(
        "quality %s: %d critical, %d warnings over %d rows",
        dataset,
        len(report.critical),
        len(report.warnings),
        len(manifest),
    )
    return report


# Below this size a manifest is checked in one process: a second costs more than it saves.
PARALLEL_MIN_BYTES = 16 << 20  # about 50,000 rows
T = TypeVar("T")


def _objects_and_slices(
    manifest: pd.DataFrame, classes: tuple[str, ...], slice_keys: tuple[str, ...]
) -> tuple[rules.ObjectFacts, pd.DataFrame]:
    return rules.object_facts(manifest, classes), rules.slice_coverage(manifest, slice_keys)


def _objects_and_slices_of_file(
    path: Path, classes: tuple[str, ...], slice_keys: tuple[str, ...]
) -> tuple[rules.ObjectFacts, pd.DataFrame]:
    return _objects_and_slices(read_manifest(path, list(rules.OBJECT_COLUMNS)), classes, slice_keys)


@contextmanager
def _beside(fn: Callable[..., T], path: Path, *args: Any) -> Iterator[Callable[[], T]]:
    """Run ``fn(path, *args)`` in a second process while the ``with`` body runs; yields the
    function that waits for its result.

    The gate has two halves of about equal cost: parsing the objects and metadata JSON, and
    everything else (leakage, near duplicates, the GX import). The second process is forked
    before either reads the manifest and reads the columns it needs itself: a child forked
    after the read would share the parent's pages, and every page either side then writes
    is copied (which cost more than the second core saved). A million rows, measured before
    pandas kept text in Arrow arrays: 25 s in one process, about 20 s in two. On one core, or
    for a small file, ``fn`` runs here.
    """
    if (os.cpu_count() or 1) == 1 or path.stat().st_size < PARALLEL_MIN_BYTES:
        yield lambda: fn(path, *args)
        return
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool.submit(fn, path, *args).result


def write_report(report: QualityReport, path: Path) -> None:
    write_json(path, report.as_dict())
