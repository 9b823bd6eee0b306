"""DVC stage `tune`: an Optuna study over params `tune.space` (off while `tune.trials` is 0).

Writes the best values found so far to --best; the `train` stage applies them over params
`train`. Other workers join the same study with `modelyard tune` (same database, same
`tune.study`).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.training.run import TrainPaths


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("tune", __doc__ or "")
    p.add_argument("--converted", type=Path, required=True, help="convert's output folder")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--best", type=Path, required=True, help="best values JSON to write")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        paths = TrainPaths(
            converted=args.converted,
            snapshot=args.snapshot,
            out=Path("unused"),
            checkpoints=Path("unused"),
            repo=Path.cwd(),
        )
        outcome = stages.tune(params, paths, args.best, worker=f"dvc@{socket.gethostname()}")
        stages.log.info(
            "study %s: %d trials, best %s %s", outcome.study, outcome.trials,
            outcome.best_value, outcome.best_params,
        )  # fmt: skip
        return 0

    return stages.run("tune", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
