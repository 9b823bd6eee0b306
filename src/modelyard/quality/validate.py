"""The quality gate over one snapshot: derive the checked columns, run the suites, report.

Critical findings fail the gate; warnings are reported and pass. The same function backs the
``validate`` DVC stage (on the manifest files) and ``modelyard dataset ready`` (on the rows the
snapshot would export now).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.errors import ConfigError
from modelyard.files import write_json
from modelyard.quality import rules
from modelyard.quality.expectations import Finding, SuiteRun, run_suites
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
    manifest: pd.DataFrame,
    *,
    dataset: str,
    classes: tuple[str, ...],
    params: ValidateParams,
    suites_dir: Path,
    docs_dir: Path | None = None,
) -> QualityReport:
    """Run every suite of ``suites_dir`` on ``manifest`` (all-string snapshot columns)."""
    missing = [s for s in SUITES if not (suites_dir / f"{s}.json").is_file()]
    if missing:
        raise ConfigError(
            f"expectation suites not found in {suites_dir}: {', '.join(missing)} "
            "(run from the project root, or pass the folder that holds them)"
        )
    objects = rules.parse_objects(manifest["objects"])
    frames = {
        "samples": rules.sample_facts(manifest, objects, classes, params),
        "class_coverage": rules.class_coverage(manifest, objects, classes),
        "slice_coverage": rules.slice_coverage(manifest, params.slice_keys),
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


def write_report(report: QualityReport, path: Path) -> None:
    write_json(path, report.as_dict())
