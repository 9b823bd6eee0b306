"""DVC stage `gate`: the acceptance gates over the evaluation.

Writes the gate report (--report) and the model card (--card, whose Status block says
"Production-ready" or "Proposed (gate-failed: ...)"); exits 0 if and only if every gate
passes, so `dvc repro` stops, loudly, before a failing model is registered as a candidate.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from modelyard import stages

log = logging.getLogger("modelyard.gate")


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("gate", __doc__ or "")
    p.add_argument("--evaluation", type=Path, required=True, help="evaluate's folder")
    p.add_argument("--gates", type=Path, required=True, help="acceptance gates YAML")
    p.add_argument("--train-report", type=Path, required=True, help="train's metrics JSON")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--report", type=Path, required=True, help="gate report JSON to write")
    p.add_argument("--card", type=Path, required=True, help="model card to write")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        paths = stages.GatePaths(
            evaluation=args.evaluation, gates=args.gates, train_report=args.train_report,
            snapshot=args.snapshot / "snapshot.json", report=args.report, card=args.card,
        )  # fmt: skip
        report = stages.gate(params, paths, sys.argv if argv is None else ["gate", *argv])
        checks = report["checks"]
        passed = sum(c["verdict"] == "pass" for c in checks)
        log.info("%d of %d checks passed; %s", passed, len(checks), report["summary"])
        for reason in report["reasons"]:
            log.error("gate failed: %s", reason)
        return 0 if report["status"] == "PASS" else 1

    return stages.run("gate", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
