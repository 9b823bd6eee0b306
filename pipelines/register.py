"""DVC stage `register`: the gated bundle -> a new MLflow model version of `<policy>-<task>`
with every format, calibration.json, the model card and the gate report, tagged with its
lineage; alias `candidate` only when the gate passed; and its verify_ai_ml_models row.
Writes the name, version and row id to --out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.registry.register import RegisterInputs


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("register", __doc__ or "")
    p.add_argument("--model", type=Path, required=True, help="train's output folder")
    p.add_argument("--exports", type=Path, required=True, help="export's folder")
    p.add_argument("--evaluation", type=Path, required=True, help="evaluate's folder")
    p.add_argument("--gate-report", type=Path, required=True, help="the gate report")
    p.add_argument("--card", type=Path, required=True, help="the model card")
    p.add_argument("--train-report", type=Path, required=True, help="train's metrics JSON")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--out", type=Path, required=True, help="JSON to write the version to")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        inputs = RegisterInputs(
            model=args.model, exports=args.exports, evaluation=args.evaluation,
            gate_report=args.gate_report, card=args.card, train_report=args.train_report,
            snapshot=args.snapshot / "snapshot.json",
        )  # fmt: skip
        stages.register(params, inputs, args.out)
        return 0

    return stages.run("register", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
