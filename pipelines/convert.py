"""DVC stage `convert`: active manifests -> COCO json and YOLO layouts with the class map."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.datasets import convert
from modelyard.datasets.records import SPLITS
from modelyard.datasets.snapshot import read_manifest


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("convert", __doc__ or "")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder (class map)")
    p.add_argument("--manifests", type=Path, required=True, help="active manifests (download)")
    p.add_argument("--images", type=Path, required=True, help="local image cache")
    p.add_argument("--out", type=Path, required=True, help="folder for the layouts")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        info = json.loads((args.snapshot / "snapshot.json").read_text())
        classes = tuple(info["dataset"]["classes"])
        manifests = {s: read_manifest(args.manifests / f"manifest_{s}.csv") for s in SPLITS}
        counts = convert.convert(manifests, classes, args.images, args.out)
        stages.log.info("wrote COCO and YOLO layouts for %s, classes %s", counts, list(classes))
        return 0

    return stages.run("convert", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
