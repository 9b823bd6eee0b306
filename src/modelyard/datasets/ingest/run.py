"""One ingest: read a source, check every record, write the good ones in one transaction.

Order of work, so that nothing is half-written:
1. read the whole source (a file that cannot be read at all raises ``IngestError``);
2. open one transaction; check every record's fields, read and decode every image, and put
   the images of the clean records into the object store as packs, a pack sealed before any
   of its records is passed on (content-addressed, so a crash leaves only unreferenced blobs
   or an unsealed pack nobody sees) — in a process pool for large sources;
3. as each result comes back, compare it with what the dataset already holds: the same path
   with the same bytes is ``unchanged`` (re-running an ingest adds nothing), a known image
   under another path is a duplicate, the same path with other bytes is a conflict; new
   samples stream straight into the COPY;
4. record the ingest and commit. Until then no row is visible; any error rolls it all back."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.datasets import checks
from modelyard.datasets.images import ImageFacts, read_image
from modelyard.datasets.ingest import coco, csv_manifest, sqlite_decisions, yolo
from modelyard.datasets.ingest.source import Source
from modelyard.datasets.records import Rejection, SourceRecord
from modelyard.db import ingests as ingests_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.db.samples import NewSample
from modelyard.errors import StateError
from modelyard.storage import ObjectStore, PackWriter

log = logging.getLogger(__name__)

_INDEX = re.compile(r"\[\d+\]")
# Below this many records a process pool costs more than it saves.
PARALLEL_MIN_RECORDS = 500
MAX_WORKERS = 8


def _read_yolo(path: Path, images_dir: Path | None) -> Source:
    return yolo.read(images_dir or path)


FORMATS: dict[str, Callable[[Path, Path | None], Source]] = {
    "coco": coco.read,
    "yolo": _read_yolo,
    "csv": csv_manifest.read,
    "sqlite-decisions": sqlite_decisions.read,
}


@dataclass(kw_only=True)
class IngestReport:
    dataset: str
    source_format: str
    source_path: str
    records_seen: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected_records: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def by_reason(self) -> dict[str, int]:
        """Rejections counted by field (indices folded: objects[3].bbox -> objects[].bbox)."""
        counts: dict[str, int] = {}
        for r in self.rejections:
            key = _fold_index(r.field)
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "source_format": self.source_format,
            "source_path": self.source_path,
            "records_seen": self.records_seen,
            "inserted": self.inserted,
            "unchanged": self.unchanged,
            "rejected_records": self.rejected_records,
            "rejections_by_field": self.by_reason(),
            "duplicates": self.duplicates,
            "rejections": [r.as_dict() for r in self.rejections],
            "seconds": round(self.seconds, 3),
        }


def read_source(source_format: str, path: Path, images_dir: Path | None = None) -> Source:
    reader = FORMATS.get(source_format)
    if reader is None:
        raise StateError(f"unknown format '{source_format}'; choose one of {', '.join(FORMATS)}")
    return reader(path, images_dir)


_Result = tuple[SourceRecord, list[Rejection], ImageFacts | None]


@dataclass(kw_only=True)
class _Rejected:
    rejections: list[Rejection] = field(default_factory=list)
    records: int = 0

    def add(self, problems: Iterable[Rejection]) -> None:
        self.rejections.extend(problems)
        self.records += 1


def run_ingest(
    conn: Connection,
    store: ObjectStore,
    dataset: Dataset,
    source: Source,
    report: IngestReport,
) -> IngestReport:
    """Check ``source`` against ``dataset`` and write its good records; fills ``report``.

    Checked records stream into the COPY as they come back from the workers, inside one
    transaction: nothing is visible to anyone until every record has been checked, and any
    error rolls the whole ingest back.
    """
    started = datetime.now(UTC)
    if dataset.status != "collecting":
        raise StateError(
            f"dataset '{dataset.name}' is {dataset.status}; ingest needs it collecting "
            f"(modelyard dataset set-status {dataset.name} collecting)"
        )
    rejected = _Rejected()
    with conn.transaction(), _checked(source.records, dataset.classes, store) as results:
        existing = samples_db.sha_by_path(conn, dataset.id)
        new_samples = _against_dataset(results, existing, rejected, report)
        report.inserted = samples_db.insert_many(conn, dataset.id, new_samples)
        rejections = [*source.orphans, *rejected.rejections]
        report.records_seen = len(source.records)
        report.rejections = rejections
        report.rejected_records = rejected.records
        ingests_db.record(
            conn,
            ingests_db.IngestRun(
                dataset_id=dataset.id,
                source_format=report.source_format,
                source_path=report.source_path,
                records_seen=report.records_seen,
                inserted=report.inserted,
                unchanged=report.unchanged,
                rejected=report.rejected_records,
                rejections=[r.as_dict() for r in rejections],
                started_at=started,
            ),
        )
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    log.info(
        "ingest %s: %d inserted, %d unchanged, %d rejected",
        report.source_path,
        report.inserted,
        report.unchanged,
        report.rejected_records,
    )
    return report


@contextlib.contextmanager
def _checked(
    records: list[SourceRecord], classes: tuple[str, ...], store: ObjectStore
) -> Iterator[Iterator[_Result]]:
    """Check every record and store the images of the clean ones, on every core.

    Yields the results in source order, each as soon as it is ready.
    """
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if workers == 1 or len(records) < PARALLEL_MIN_RECORDS:
        with store.pack_writer() as pack:
            # sealed when the caller's block ends, before its transaction commits
            yield (_check_and_store(rec, classes, pack) for rec in records)
        return
    # fork: workers start in milliseconds and inherit the imports and the records (nothing is
    # pickled on the way in); only index ranges go out and small results come back. The
    # workers touch no database connection.
    context = multiprocessing.get_context("fork")
    chunk = max(1, len(records) // (workers * 16))
    ranges = [(i, min(i + chunk, len(records))) for i in range(0, len(records), chunk)]
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(records, classes, store),
    ) as pool:
        try:
            yield _in_order(records, pool.map(_check_range, ranges))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


_worker_job: tuple[list[SourceRecord], tuple[str, ...], ObjectStore] | None = None


def _init_worker(records: list[SourceRecord], classes: tuple[str, ...], store: ObjectStore) -> None:
    global _worker_job  # one job per forked worker process
    _worker_job = (records, classes, store)


def _check_range(bounds: tuple[int, int]) -> list[tuple[int, list[Rejection], ImageFacts | None]]:
    """One range of records; its images go into one pack, sealed before the results go back,
    so no row is ever written for an image that is not in the store."""
    if _worker_job is None:
        raise RuntimeError("ingest worker started without _init_worker")
    records, classes, store = _worker_job
    out = []
    with store.pack_writer() as pack:
        for i in range(*bounds):
            _, problems, facts = _check_and_store(records[i], classes, pack)
            out.append((i, problems, facts))
    return out


def _in_order(
    records: list[SourceRecord],
    chunks: Iterable[list[tuple[int, list[Rejection], ImageFacts | None]]],
) -> Iterator[_Result]:
    for chunk in chunks:
        for i, problems, facts in chunk:
            yield records[i], problems, facts


def _check_and_store(
    rec: SourceRecord, classes: tuple[str, ...], pack: PackWriter
) -> tuple[SourceRecord, list[Rejection], ImageFacts | None]:
    """All checks of one record; a clean record's image goes into the pack at once.

    Storing before the dataset comparison can leave an unreferenced blob (an image whose
    path turns out to conflict), never a row without its image. The bytes are not sent
    back to the parent process.
    """
    problems = checks.field_problems(rec, classes)
    if checks.path_problem(rec.image_path) is not None:
        return rec, problems, None
    result = read_image(rec.root / rec.image_path)
    if isinstance(result, tuple):
        return rec, [*problems, rec.reject("image_path", *result)], None
    problems.extend(checks.image_problems(rec, result))
    if problems:
        return rec, problems, None
    pack.add(result.data, result.sha256)
    return rec, problems, dataclasses.replace(result, data=b"")


def _against_dataset(
    results: Iterable[_Result],
    existing: dict[str, str],
    rejected: _Rejected,
    report: IngestReport,
) -> Iterator[NewSample]:
    """Yield the new samples; sort the rest into rejected, unchanged, duplicates and conflicts.

    ``existing`` maps the dataset's image paths to their sha256 and grows as records pass.
    """
    path_of_sha = {sha: path for path, sha in existing.items()}
    for rec, problems, facts in results:
        if problems or facts is None:
            rejected.add(problems)
            continue
        known_sha = existing.get(rec.image_path)
        if known_sha == facts.sha256:
            report.unchanged += 1
            continue
        if known_sha is not None:
            problem = rec.reject(
                "image_path",
                "the dataset has a different image at this path",
                "give the new image its own file name",
            )
        elif facts.sha256 in path_of_sha:
            same_as = path_of_sha[facts.sha256]
            report.duplicates.append({"image_path": rec.image_path, "same_as": same_as})
            problem = rec.reject(
                "image_sha256",
                f"duplicate image: same bytes as '{same_as}'",
                "drop one copy; identical images in two splits leak the test set",
            )
        else:
            path_of_sha[facts.sha256] = rec.image_path
            existing[rec.image_path] = facts.sha256
            yield checks.to_sample(rec, facts)
            continue
        rejected.add([problem])


def _fold_index(name: str) -> str:
    return _INDEX.sub("[]", name)
