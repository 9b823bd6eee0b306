"""The inference history: one row per image ``modelyard score`` scored with a released
bundle, each image's latest score per policy, and the window sums the drift job bins them
into (the same features, on the same edges, as device telemetry)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from modelyard.db.connection import Connection

PER_IMAGE = ("confidence", "brightness", "contrast", "blur", "detections")
# the drift features a row holds (``window_counts`` bins only these; others are telemetry's)
BINNED = ("score", "confidence", "detections_per_image", "brightness", "contrast", "blur")


@dataclass(frozen=True, kw_only=True)
class Inference:
    bundle_id: uuid.UUID
    policy_id: str
    model_version: str
    image_sha256: str
    sample_id: uuid.UUID | None
    source: str
    raw_score: float
    score: float
    decision: bool
    threshold: float
    outputs: dict[str, Any]
    confidence: float
    brightness: float
    contrast: float
    blur: float
    detections: int | None
    scores: Sequence[float]
    predicted: Sequence[str]
    latency_ms: float
    scored_at: datetime


_COLUMNS = ("bundle_id", "model_version", "image_sha256", "sample_id", "source", "raw_score",
            "score", "decision", "threshold", "outputs", "confidence", "brightness", "contrast",
            "blur", "detections", "scores", "predicted", "latency_ms", "scored_at")  # fmt: skip


def store(conn: Connection, rows: Sequence[Inference]) -> int:
    """Write a batch of inferences and move each image's latest score to it, in one
    transaction. Returns how many were written."""
    if not rows:
        return 0
    values = [
        tuple(Jsonb(v) if c == "outputs" else list(v) if c in ("scores", "predicted") else v
              for c, v in ((c, getattr(r, c)) for c in _COLUMNS))
        for r in rows
    ]  # fmt: skip
    insert = sql.SQL("INSERT INTO verify_ai_inferences ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)),
    )
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            insert,
            values,
            returning=True,
        )
        ids = []
        while True:
            found = cursor.fetchone()
            ids.append(int(found["id"]))  # type: ignore[index]
            if not cursor.nextset():
                break
        latest: dict[tuple[str, str], tuple[int, Inference]] = {}
        for inference_id, r in zip(ids, rows, strict=True):
            latest[(r.image_sha256, r.policy_id)] = (inference_id, r)
        cursor.executemany(
            "INSERT INTO verify_ai_image_scores (image_sha256, policy_id, inference_id, "
            "bundle_id, model_version, score, decision, scored_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (image_sha256, policy_id) DO "
            "UPDATE SET inference_id = EXCLUDED.inference_id, bundle_id = EXCLUDED.bundle_id, "
            "model_version = EXCLUDED.model_version, score = EXCLUDED.score, "
            "decision = EXCLUDED.decision, scored_at = EXCLUDED.scored_at "
            "WHERE verify_ai_image_scores.scored_at <= EXCLUDED.scored_at",
            [
                (sha, policy, i, r.bundle_id, r.model_version, r.score, r.decision, r.scored_at)
                for (sha, policy), (i, r) in sorted(latest.items())
            ],
        )
    return len(rows)


def latest_score(conn: Connection, image_sha256: str, policy_id: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "SELECT * FROM verify_ai_image_scores WHERE image_sha256 = %s AND policy_id = %s",
        (image_sha256, policy_id),
    ).fetchone()
    return row


def window_counts(
    conn: Connection, start: datetime, end: datetime,
    bins: Mapping[str, tuple[float, float, int]],
) -> dict[uuid.UUID, dict[str, Any]]:  # fmt: skip
    """Per bundle with inferences scored in [start, end): their count, each feature's bins
    (``bins``: feature -> (low, high, count), values beyond the ends in the end bins, as
    devices bin them; features a row does not hold, such as a crop proposer's boxes, are left
    to telemetry) and the predicted classes."""
    out: dict[uuid.UUID, dict[str, Any]] = {}
    window = {"start": start, "end": end}
    columns = {"detections_per_image": "i.detections::double precision", "score": "s.value"}
    selects = []
    for feature, (low, high, count) in sorted(bins.items()):
        if feature not in BINNED:
            continue
        column = sql.SQL(columns.get(feature, f"i.{feature}"))  # from the fixed names above
        source = sql.SQL(", unnest(i.scores) AS s(value)" if feature == "score" else "")
        selects.append(
            sql.SQL(
                "SELECT i.bundle_id, {feature} AS feature, "
                "least(greatest(width_bucket({column}, {low}, {high}, {count}), 1), {count}) - 1 "
                "AS bin, count(*) AS count FROM verify_ai_inferences i{source} "
                "WHERE i.scored_at >= %(start)s AND i.scored_at < %(end)s "
                "AND {column} IS NOT NULL GROUP BY 1, 2, 3"
            ).format(
                feature=sql.Literal(feature),
                column=column,
                low=sql.Literal(float(low)),
                high=sql.Literal(float(high)),
                count=sql.Literal(int(count)),
                source=source,
            )
        )
    for r in conn.execute(
        "SELECT bundle_id, count(*) AS images FROM verify_ai_inferences "
        "WHERE scored_at >= %(start)s AND scored_at < %(end)s GROUP BY 1",
        window,
    ):
        out[r["bundle_id"]] = {"images": int(r["images"]), "bins": {}, "classes": {}}
    if not out:
        return out
    for r in conn.execute(sql.SQL(" UNION ALL ").join(selects), window):
        out[r["bundle_id"]]["bins"].setdefault(r["feature"], {})[int(r["bin"])] = int(r["count"])
    for r in conn.execute(
        "SELECT i.bundle_id, p.name, count(*) AS count FROM verify_ai_inferences i, "
        "unnest(i.predicted) AS p(name) WHERE i.scored_at >= %(start)s AND i.scored_at < %(end)s "
        "GROUP BY 1, 2",
        window,
    ):
        out[r["bundle_id"]]["classes"][r["name"]] = int(r["count"])
    return out


def for_bundle(conn: Connection, bundle_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """Every inference of these bundles on a dataset sample, the latest per sample and
    bundle, with the sample's labels and metadata (what a review cycle compares)."""
    return conn.execute(
        "SELECT DISTINCT ON (i.sample_id, i.bundle_id) i.*, s.image_path, s.split, "
        "s.annotations, s.is_compliant, s.label_value, s.metadata, s.group_key, s.dataset_id "
        "FROM verify_ai_inferences i JOIN verify_ai_ml_samples s ON s.id = i.sample_id "
        "WHERE i.bundle_id = ANY(%s) ORDER BY i.sample_id, i.bundle_id, i.scored_at DESC",
        (list(bundle_ids),),
    ).fetchall()
