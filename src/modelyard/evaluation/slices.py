"""Metrics stratified by the metadata keys params name (stream, scenario, road_type, ...):
one row per key and value with its sample count. A slice smaller than the floor is kept and
flagged ``small`` — its figures are shown, and a reader is told not to lean on them.

``groups`` does the same per held-out group (``group_key``, or a metadata key): the split
is group-aware, so every test group is one the model never trained on, and the spread of a
metric over groups is what leave-one-group-out gates judge."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MISSING = "(missing)"

Scorer = Callable[[list[int]], dict[str, Any]]


def values_of(records: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """Each image's value for ``key``: a metadata key, or ``group_key`` itself."""
    out = []
    for record in records:
        value = record.get("group_key") if key == "group_key" else record["metadata"].get(key)
        out.append(MISSING if value in (None, "") else str(value))
    return out


def stratify(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    score: Scorer,
    *,
    min_samples: int,
) -> list[dict[str, Any]]:
    """Per key, per value (sorted): samples, ``small``, and ``score``'s metrics."""
    rows = []
    for key in keys:
        by_value: dict[str, list[int]] = defaultdict(list)
        for index, value in enumerate(values_of(records, key)):
            by_value[value].append(index)
        for value in sorted(by_value):
            members = by_value[value]
            rows.append(
                {
                    "key": key,
                    "value": value,
                    "samples": len(members),
                    "small": len(members) < min_samples,
                    "metrics": score(members),
                }
            )
    return rows
