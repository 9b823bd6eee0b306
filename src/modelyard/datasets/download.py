"""Object store -> local image cache, for the rows of a snapshot.

Each image lands at ``<cache>/<sha[:2]>/<sha><ext>``; a cached copy is re-hashed rather than
trusted. A row whose image is missing from the store, corrupt (sha256 mismatch) or does not
decode is dropped from the active manifest and listed with the reason; the rest are kept.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from PIL import Image, UnidentifiedImageError

from modelyard.errors import IntegrityError, NotFoundError, StorageError
from modelyard.files import write_atomic
from modelyard.storage import ObjectStore, sha256_bytes

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class DownloadReport:
    fetched: int = 0
    cached: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "cached": self.cached,
            "dropped_count": len(self.dropped),
            "dropped": self.dropped,
        }


def cache_path(sha256: str, image_path: str) -> str:
    """The image's place in the cache, relative to the cache folder."""
    suffix = PurePosixPath(image_path).suffix.lower() or ".img"
    return f"{sha256[:2]}/{sha256}{suffix}"


def download(
    manifest: pd.DataFrame, store: ObjectStore, cache: Path, report: DownloadReport
) -> pd.DataFrame:
    """Fetch every row's image into ``cache``; returns the kept rows with ``local_path``."""
    keep: list[bool] = []
    local: list[str] = []
    for row in manifest.itertuples(index=False):
        rel = cache_path(str(row.image_sha256), str(row.image_path))
        problem = _ensure(store, cache / rel, str(row.image_sha256), report)
        if problem is not None:
            report.dropped.append(
                {
                    "sample_id": str(row.sample_id),
                    "image_path": str(row.image_path),
                    "reason": problem,
                }
            )
            log.warning("download: dropped %s: %s", row.image_path, problem)
        keep.append(problem is None)
        local.append(rel)
    out = manifest.assign(local_path=local)
    return out.loc[keep].reset_index(drop=True)


def _ensure(store: ObjectStore, target: Path, sha256: str, report: DownloadReport) -> str | None:
    if target.is_file() and sha256_bytes(target.read_bytes()) == sha256:
        report.cached += 1
        return None
    try:
        data = store.get_blob(sha256)
    except NotFoundError:
        return "image missing from the object store; re-ingest it"
    except IntegrityError:
        return "stored image is corrupt (sha256 mismatch); re-ingest the original"
    except StorageError as exc:
        return f"object store error: {exc}"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"image does not decode ({type(exc).__name__}); re-ingest it"
    write_atomic(target, data)
    report.fetched += 1
    return None
