"""Telemetry a device sends: one window of binned histograms on its bundle's reference bin
edges, checked against that reference before anything is stored.

A window is ``(device_id, bundle_id, window_start, window_end)``; sending it again with the
same content is a no-op (``duplicate``), with other content a conflict. Per-image features
(``confidence``, ``brightness``, ``contrast``, ``blur``, ``detections_per_image``) must
count exactly ``sample_count`` images; ``score`` counts detections, any number of them.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from modelyard.db.telemetry import Window
from modelyard.errors import TelemetryError
from modelyard.serving.catalog import Served
from modelyard.serving.config import ServeParams

Count = Annotated[int, Field(ge=0, le=10**12)]
DeviceId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
EDGE_TOLERANCE = 1e-6


class Histogram(BaseModel):
    model_config = ConfigDict(extra="forbid")

    counts: Annotated[list[Count], Field(max_length=1000)]
    edges: Annotated[list[float], Field(max_length=1001)] | None = None


class TelemetryIn(BaseModel):
    """One device's window of statistics for one bundle."""

    model_config = ConfigDict(extra="forbid")

    device_id: DeviceId
    bundle_id: uuid.UUID
    window_start: AwareDatetime
    window_end: AwareDatetime
    sample_count: Annotated[int, Field(ge=0, le=10**9)]
    histograms: Annotated[dict[str, Histogram], Field(max_length=32)] = Field(default_factory=dict)
    class_mix: Annotated[dict[str, Count], Field(max_length=1000)] = Field(default_factory=dict)


class TelemetryOut(BaseModel):
    status: str  # created | duplicate
    window_id: int
    bundle_id: str
    sample_count: int


def content_hash(payload: TelemetryIn) -> str:
    data = orjson.dumps(payload.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def to_window(
    payload: TelemetryIn, bundle: Served, key: Any, params: ServeParams, now: datetime
) -> Window:
    """The rows to store, or a TelemetryError naming the field that does not fit."""
    start, end = payload.window_start, payload.window_end
    if end <= start:
        raise TelemetryError(f"window_end {end.isoformat()} is not after window_start")
    if end - start > timedelta(seconds=params.telemetry_max_window_s):
        raise TelemetryError(
            f"window_end: the window is {(end - start).total_seconds():.0f} s long, more than "
            f"serve.telemetry_max_window_s {params.telemetry_max_window_s}; send shorter windows"
        )
    if end > now + timedelta(seconds=params.telemetry_max_skew_s):
        raise TelemetryError(f"window_end {end.isoformat()} is in the future; check the clock")
    spec = bundle.telemetry_spec()
    if not spec["features"]:
        raise TelemetryError(
            f"bundle_id: {bundle.label} has no promotion reference statistics to bin against"
        )
    bins = []
    for name, histogram in sorted(payload.histograms.items()):
        bins += _bins(name, histogram, spec, payload.sample_count)
    classes = []
    known = set(spec["classes"])
    for name, count in sorted(payload.class_mix.items()):
        if name not in known:
            raise TelemetryError(
                f"class_mix.{name}: not a class of {bundle.label}; its classes are "
                f"{', '.join(sorted(known))}"
            )
        classes.append((name, count))
    return Window(
        bundle_id=bundle.id, device_id=payload.device_id, customer_id=key.customer_id,
        api_key_id=key.id, window_start=start, window_end=end,
        sample_count=payload.sample_count, content_sha256=content_hash(payload), bins=bins,
        classes=classes,
    )  # fmt: skip


def _bins(
    name: str, histogram: Histogram, spec: dict[str, Any], sample_count: int
) -> list[tuple[str, int, int]]:
    features = spec["features"]
    if name not in features:
        raise TelemetryError(
            f"histograms.{name}: not a feature of the bundle's reference; send "
            f"{', '.join(sorted(features))}"
        )
    edges = features[name]["edges"]
    if len(histogram.counts) != len(edges) - 1:
        raise TelemetryError(
            f"histograms.{name}.counts: {len(histogram.counts)} bins, the reference has "
            f"{len(edges) - 1} (edges in /latest's telemetry.features.{name}.edges)"
        )
    if histogram.edges is not None and (
        len(histogram.edges) != len(edges)
        or any(abs(a - b) > EDGE_TOLERANCE for a, b in zip(histogram.edges, edges, strict=True))
    ):
        raise TelemetryError(
            f"histograms.{name}.edges: not the reference's bin edges; bin on "
            f"telemetry.features.{name}.edges from /latest"
        )
    total = sum(histogram.counts)
    if name in spec["per_image"] and total != sample_count:
        raise TelemetryError(
            f"histograms.{name}.counts: they sum to {total}, but sample_count is {sample_count} "
            "(a per-image feature counts every image once)"
        )
    return [(name, i, c) for i, c in enumerate(histogram.counts) if c]
