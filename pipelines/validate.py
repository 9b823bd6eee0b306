"""DVC stage `validate`: the quality and leakage suites over the snapshot; fails closed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.config import section
from modelyard.quality import EXIT_GATE_FAILED, validate
from modelyard.quality.rules import ValidateParams


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("validate", __doc__ or "")
    p.add_argument("--snapshot", type=Path, required=True, help="folder of the snapshot stage")
    p.add_argument("--suites", type=Path, default=Path("expectations"))
    p.add_argument("--report", type=Path, required=True, help="quality report (JSON)")
    p.add_argument("--docs", type=Path, help="folder for the GX Data Docs HTML")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        cfg = section(params, "validate", ValidateParams)
        info = json.loads((args.snapshot / "snapshot.json").read_text())
        report = validate.validate(
            args.snapshot / "manifest_full.csv",
            dataset=info["dataset"]["name"],
            classes=tuple(info["dataset"]["classes"]),
            params=cfg,
            suites_dir=args.suites,
            docs_dir=args.docs,
        )
        validate.write_report(report, args.report)
        for finding in [*report.critical, *report.warnings]:
            stages.log.log(
                40 if finding.severity == "critical" else 30,
                "%s: %s (%d rows, first: %s) -> fix: %s",
                finding.severity.upper(),
                finding.check,
                finding.unexpected_count,
                finding.rows[:1],
                finding.fix,
            )
        if not report.passed:
            stages.log.error(
                "quality gate FAILED: %d critical finding(s); see %s",
                len(report.critical),
                args.report,
            )
            return EXIT_GATE_FAILED
        stages.log.info("quality gate passed (%d warnings)", len(report.warnings))
        return 0

    return stages.run("validate", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
