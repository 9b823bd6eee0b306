"""Telemetry windows a device builds: counts on the bin edges its bundle's /latest gave.

Values beyond the first or last edge count in the end bins, as the promotion reference
counts them, so live and reference histograms compare bin for bin.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any


def counts(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """How many ``values`` fall in each bin [edges[i], edges[i+1]) (the last bin closed)."""
    bins = [0] * (len(edges) - 1)
    inner = list(edges[1:-1])
    for value in values:
        bins[bisect.bisect_right(inner, value)] += 1
    return bins


def window(
    *, device_id: str, bundle_id: str, start: datetime, end: datetime, sample_count: int,
    features: Mapping[str, Iterable[float]], spec: Mapping[str, Any],
    class_mix: Mapping[str, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The body of ``POST /api/v1/telemetry``: each feature's values binned on ``spec``
    (``telemetry`` of /latest)."""
    histograms = {
        name: {"counts": counts(values, spec["features"][name]["edges"])}
        for name, values in features.items()
    }
    return {
        "device_id": device_id,
        "bundle_id": bundle_id,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "sample_count": sample_count,
        "histograms": histograms,
        "class_mix": dict(class_mix or {}),
    }
