"""DVC stage `snapshot`: the dataset named in params -> manifests + snapshot.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelyard import stages
from modelyard.config import section
from modelyard.datasets import snapshot
from modelyard.db import datasets as datasets_db


def main(argv: list[str] | None = None) -> int:
    p = stages.parser("snapshot", __doc__ or "")
    p.add_argument("--out", type=Path, required=True, help="folder for the manifests")
    args = p.parse_args(argv)

    def body(params: dict[str, Any]) -> int:
        base = stages.base(params)
        cfg = section(params, "snapshot", snapshot.SnapshotParams)
        with stages.database() as conn:
            ds = datasets_db.find(conn, base.dataset_ref)
            snap = snapshot.build(conn, ds, cfg)
        info = snapshot.write(snap, args.out)
        stages.log.info(
            "%s: %s rows (%s excluded), content %s",
            ds.name,
            info["rows"],
            sum(info["excluded"].values()),
            info["content_hash"][:12],
        )
        return 0

    return stages.run("snapshot", body, args.params)


if __name__ == "__main__":
    sys.exit(main())
