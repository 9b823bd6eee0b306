"""DVC stage `export` (a matrix over formats; one process each): the trained model -> the
format's artifacts, each checked in its runtime against the PyTorch model on the test split.

Writes the artifacts, manifest.json and parity.json to --out and per-artifact figures to
--metrics; exits non-zero when any artifact fails parity (after writing all of them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.export.run import ExportPaths
from modelyard.export.samples import SamplePaths


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("export", __doc__ or "")
    p.add_argument("--format", required=True, help="onnx | tflite | coreml")
    p.add_argument("--model", type=Path, required=True, help="train's output folder")
    p.add_argument("--converted", type=Path, required=True, help="convert's output folder")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the format's artifacts")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        paths = ExportPaths(
            model=args.model,
            samples=SamplePaths(converted=args.converted, snapshot=args.snapshot),
            out=args.out,
            metrics=args.metrics,
        )
        stages.export(params, args.format, paths)
        return 0

    return stages.run(f"export {args.format}", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
