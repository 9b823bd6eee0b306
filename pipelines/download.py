"""DVC stage `download`: object store -> local image cache; bad images dropped and listed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.datasets import download
from modelyard.datasets.records import SPLITS
from modelyard.datasets.snapshot import read_manifest
from modelyard.files import write_json


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("download", __doc__ or "")
    p.add_argument("--snapshot", type=Path, required=True, help="folder of the snapshot stage")
    p.add_argument("--images", type=Path, required=True, help="local image cache")
    p.add_argument("--out", type=Path, required=True, help="folder for the active manifests")
    p.add_argument("--report", type=Path, required=True, help="download report (JSON)")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        store = stages.store()
        report = download.DownloadReport()
        args.out.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            manifest = read_manifest(args.snapshot / f"manifest_{split}.csv")
            active = download.download(manifest, store, args.images, report)
            active.to_csv(args.out / f"manifest_{split}.csv", index=False, lineterminator="\n")
        write_json(args.report, report.as_dict())
        stages.log.info(
            "%d fetched, %d already cached, %d dropped (see %s)",
            report.fetched,
            report.cached,
            len(report.dropped),
            args.report,
        )
        return 0

    return stages.run("download", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
