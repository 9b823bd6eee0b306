"""DVC stage `evaluate`: the trained model and every exported artifact on the test split.

Writes evaluation.json (metrics overall, per class, per slice, per artifact; calibration) and
calibration.json to --out, the headline figures to --metrics, and the plots to --plots; logs
them to the training run in MLflow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.evaluation.run import EvaluatePaths
from modelyard.export.samples import SamplePaths


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("evaluate", __doc__ or "")
    p.add_argument("--model", type=Path, required=True, help="train's output folder")
    p.add_argument("--exports", type=Path, required=True, help="export's folder (one per format)")
    p.add_argument("--converted", type=Path, required=True, help="convert's output folder")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--train-report", type=Path, required=True, help="train's metrics JSON")
    p.add_argument("--out", type=Path, required=True, help="folder for the evaluation files")
    p.add_argument("--metrics", type=Path, required=True, help="headline metrics JSON")
    p.add_argument("--plots", type=Path, required=True, help="folder for the plots")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        paths = EvaluatePaths(
            model=args.model,
            samples=SamplePaths(converted=args.converted, snapshot=args.snapshot),
            exports=args.exports,
        )
        out = stages.EvaluateOutputs(
            folder=args.out, metrics=args.metrics, plots=args.plots, train_report=args.train_report
        )
        stages.evaluate(params, paths, out)
        return 0

    return stages.run("evaluate", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
