"""DVC stage `train`: the converted layouts -> a trained model, inside an MLflow run.

Writes the best checkpoint, its class map and resolved config to --out and the final metrics
to --metrics; keeps last.ckpt in --checkpoints so that `--resume` continues a killed run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.training.run import TrainPaths


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("train", __doc__ or "")
    p.add_argument("--converted", type=Path, required=True, help="convert's output folder")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the trained model")
    p.add_argument("--checkpoints", type=Path, required=True, help="folder for last.ckpt")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--tuned", type=Path, help="best values of the tune stage (JSON)")
    p.add_argument("--resume", action="store_true", help="continue from last.ckpt")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        paths = TrainPaths(
            converted=args.converted,
            snapshot=args.snapshot,
            out=args.out,
            checkpoints=args.checkpoints,
            repo=Path.cwd(),
        )
        outcome = stages.train(params, paths, args.metrics, resume=args.resume, tuned=args.tuned)
        stages.log.info("MLflow run %s, job %s", outcome.run_id, outcome.job_id)
        return 0

    return stages.run("train", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
