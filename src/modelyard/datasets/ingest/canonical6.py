"""Canonical-6 corpus rows into a dataset, and back.

Each checked row becomes one sample: ``image_path`` is the row's key
(``encode/<codec>/<source>/cq<cq>/frame<n>``: an encode has no image, the path only names it
uniquely), ``image_sha256`` the sha256 of the row's values, ``group_key`` the source (so
splits and leakage checks keep a source whole, as they keep a driver or a site),
``label_value`` the VMAF, and ``metadata`` every feature. Width and height are 1: the
schema needs a positive size and an encode row has none.

Re-ingesting the same rows changes nothing; a row whose values differ from the stored ones
under the same key is rejected (a corpus is append-only: give the new encode its own frame
or cq). The whole ingest is one transaction, recorded in verify_ai_ml_ingests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from modelyard.datasets.corpus import Corpus, EncodeRow
from modelyard.datasets.ingest.run import IngestReport
from modelyard.datasets.records import Rejection
from modelyard.db import ingests as ingests_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.db.samples import NewSample
from modelyard.errors import StateError

FORMAT = "canonical6"
KIND = "encode"


def sample_path(row: EncodeRow) -> str:
    return f"encode/{row.codec}/{row.src}/cq{row.cq:g}/frame{row.frame_index}"


def row_sha256(row: EncodeRow) -> str:
    return hashlib.sha256(json.dumps(row.as_dict(), sort_keys=True).encode()).hexdigest()


def ingest(conn: Connection, dataset: Dataset, corpus: Corpus, source_path: str) -> IngestReport:
    """Write ``corpus``'s rows into ``dataset``; its rejections are carried into the report."""
    if dataset.status != "collecting":
        raise StateError(
            f"dataset '{dataset.name}' is {dataset.status}; ingest needs it collecting "
            f"(modelyard dataset set-status {dataset.name} collecting)"
        )
    started = datetime.now(UTC)
    report = IngestReport(dataset=dataset.name, source_format=FORMAT, source_path=source_path)
    rejections = list(corpus.rejections)
    with conn.transaction():
        existing = samples_db.sha_by_path(conn, dataset.id)
        new: list[NewSample] = []
        for row in corpus.rows:
            path, sha = sample_path(row), row_sha256(row)
            problem = _path_problem(row, path)
            if problem is None and existing.get(path) not in (None, sha):
                problem = Rejection(
                    record=row.record, field="src", image_path=path,
                    reason="the dataset holds other values for this source, codec, cq and frame",
                    fix="a corpus is append-only: give the new encode its own cq or frame",
                )  # fmt: skip
            if problem is not None:
                rejections.append(problem)
            elif path in existing:
                report.unchanged += 1
            else:
                existing[path] = sha
                new.append(_sample(row, path, sha))
        report.inserted = samples_db.insert_many(conn, dataset.id, new)
        report.records_seen = len(corpus.rows) + len(corpus.rejections)
        report.rejections = rejections
        report.rejected_records = len(rejections)
        ingests_db.record(
            conn,
            ingests_db.IngestRun(
                dataset_id=dataset.id, source_format=FORMAT, source_path=source_path,
                records_seen=report.records_seen, inserted=report.inserted,
                unchanged=report.unchanged, rejected=report.rejected_records,
                rejections=[r.as_dict() for r in rejections], started_at=started,
            ),
        )  # fmt: skip
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    return report


def rows_of(samples: Iterable[dict[str, Any]]) -> list[EncodeRow]:
    """The corpus rows of a dataset's samples (others, if any, are skipped)."""
    rows = []
    for s in samples:
        meta = s["metadata"] or {}
        if meta.get("kind") != KIND:
            continue
        rows.append(
            EncodeRow(
                record=f"sample {s['id']}", src=str(s["group_key"]), codec=meta["codec"],
                cq=float(meta["cq"]), enc_bytes=float(meta["enc_bytes"]),
                enc_time_ms=float(meta["enc_time_ms"]), frame_index=int(meta["frame_index"]),
                vmaf=float(s["label_value"]), adm2=float(meta["adm2"]),
                vif=tuple(float(v) for v in meta["vif"]),  # type: ignore[arg-type]
                motion2=float(meta["motion2"]), duration_s=meta.get("duration_s"),
            )
        )  # fmt: skip
    return rows


def _sample(row: EncodeRow, path: str, sha: str) -> NewSample:
    values = row.as_dict()
    return NewSample(
        image_path=path,
        image_sha256=sha,
        width=1,
        height=1,
        group_key=row.src,
        label_value=row.vmaf,
        label_source="vmaf",
        review_status="approved",
        metadata={"kind": KIND, "record": row.record, **values},
    )


def _path_problem(row: EncodeRow, path: str) -> Rejection | None:
    parts = path.split("/")
    if "\\" in path or ".." in parts or "" in parts:
        return Rejection(
            record=row.record, field="src", image_path=path,
            reason=f"source {row.src!r} cannot name a sample (a '/', '\\' or '..' in it)",
            fix="rename the source without path separators",
        )  # fmt: skip
    return None


def corpus_of(conn: Connection, dataset: Dataset) -> Corpus:
    """A dataset's corpus rows, named in provenance by the dataset and a hash of its rows."""
    samples = samples_db.all_rows(conn, dataset.id)
    rows = rows_of(samples)
    digest = hashlib.sha256()
    for s in samples:  # ordered by image_path
        if (s["metadata"] or {}).get("kind") == KIND:
            digest.update(f"{s['image_path']}\0{s['image_sha256']}\n".encode())
    source = {
        "path": f"dataset {dataset.policy_id}/{dataset.name} ({dataset.id})",
        "sha256": digest.hexdigest(),
        "rows": len(rows),
        "rejected": 0,
    }
    return Corpus(rows=rows, files=[source])
