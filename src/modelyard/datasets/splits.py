"""Group-aware, deterministic, stratified assignment of samples to train/validation/test.

The unit of assignment is the *group* (by default ``group_key``: the camera, site, driver
or source whose photos resemble each other). A group never straddles two splits.

Algorithm (the same inputs give the same answer on any machine):
1. every sample gets its group; an augmented sample takes the group of the sample named by
   ``metadata.augmented_from`` (its source image path) when the dataset has it;
2. groups that already hold a split keep it (unless ``reassign``); a group whose samples
   already sit in two splits is an error naming it;
3. the free groups are taken largest first, ties broken by sha256(seed, group) — not by
   Python's salted ``hash`` — and each goes to the split whose targets it fills best: the
   split with the largest remaining deficit, relative to its target, over the group's
   stratification labels (object classes, a label, or metadata values) and its sample count;
4. augmented samples follow their group, except into test: there they stay unassigned, since
   an augmented copy of a test image would leak it wherever else it went.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.datasets.records import SPLITS
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import StateError

log = logging.getLogger(__name__)

# The sample count weighs as much as all stratification labels together.
_COUNT_WEIGHT = 1.0


@dataclass(frozen=True, kw_only=True)
class SplitSample:
    """What the split needs to know about one sample."""

    id: str
    image_path: str
    group_key: str | None
    split: str | None
    is_augmented: bool = False
    augmented_from: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SplitRequest:
    ratios: tuple[float, float, float]
    seed: int
    reassign: bool = False


@dataclass(kw_only=True)
class SplitPlan:
    """The new split of every sample, and what it adds up to."""

    assignment: dict[str, str | None]
    changed: int
    groups: dict[str, str]
    held_out_augmented: list[str] = field(default_factory=list)

    def summary(self, samples: Sequence[SplitSample]) -> dict[str, Any]:
        """Per split: samples, groups and label counts with their share of the label."""
        by_id = {s.id: s for s in samples}
        out: dict[str, Any] = {}
        totals: dict[str, int] = {}
        for s in samples:
            for label in s.labels:
                totals[label] = totals.get(label, 0) + 1
        for name in SPLITS:
            ids = [i for i, sp in self.assignment.items() if sp == name]
            labels: dict[str, int] = {}
            for i in ids:
                for label in by_id[i].labels:
                    labels[label] = labels.get(label, 0) + 1
            out[name] = {
                "samples": len(ids),
                "groups": sum(1 for g in self.groups.values() if g == name),
                "labels": {
                    k: {"count": v, "share": round(v / totals[k], 4)}
                    for k, v in sorted(labels.items())
                },
            }
        unassigned = [i for i, sp in self.assignment.items() if sp is None]
        out["unassigned"] = {"samples": len(unassigned)}
        return out


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'0.7,0.15,0.15' -> (0.7, 0.15, 0.15); three non-negative numbers summing to 1."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as exc:
        raise StateError(f"--ratios '{text}': not numbers; write e.g. 0.7,0.15,0.15") from exc
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise StateError(
            f"--ratios '{text}': need three non-negative numbers (train,validation,test) "
            "that sum to 1, e.g. 0.7,0.15,0.15"
        )
    return parts[0], parts[1], parts[2]


def plan_splits(samples: Sequence[SplitSample], request: SplitRequest) -> SplitPlan:
    """Assign every sample a split (see the module docstring); pure, no I/O."""
    group_of = _groups(samples)
    fixed = {} if request.reassign else _fixed_groups(samples, group_of)
    members: dict[str, list[SplitSample]] = {}
    for s in samples:
        members.setdefault(group_of[s.id], []).append(s)
    vocab = sorted({label for s in samples for label in s.labels})
    index = {label: i for i, label in enumerate(vocab)}

    def vector(group: str) -> np.ndarray:
        v = np.zeros(len(vocab) + 1)
        for s in members[group]:
            if not s.is_augmented:
                v[-1] += 1
                for label in s.labels:
                    v[index[label]] += 1
        return v

    vectors = {g: vector(g) for g in members}
    total = np.sum(list(vectors.values()), axis=0) if vectors else np.zeros(len(vocab) + 1)
    ratios = np.asarray(request.ratios)
    target = ratios[:, None] * total[None, :]
    have = np.zeros_like(target)
    for g, sp in fixed.items():
        have[SPLITS.index(sp)] += vectors[g]
    free = sorted((g for g in members if g not in fixed), key=lambda g: _order(g, vectors, request))
    groups = dict(fixed)
    weights = np.ones(len(vocab) + 1)
    weights[-1] = _COUNT_WEIGHT * max(len(vocab), 1)
    open_splits = np.flatnonzero(ratios > 0)
    for g in free:
        v = vectors[g]
        deficit = (target - have) / np.maximum(target, 1e-9)
        score = (deficit * (v > 0) * weights).sum(axis=1)
        best = int(open_splits[np.argmax(score[open_splits])])
        groups[g] = SPLITS[best]
        have[best] += v
    return _apply(samples, group_of, groups)


def _groups(samples: Sequence[SplitSample]) -> dict[str, str]:
    """sample id -> group; ungrouped samples are groups of one; augmented follow their source."""
    own = {s.id: s.group_key or f"~{s.id}" for s in samples}
    by_path = {s.image_path: own[s.id] for s in samples if not s.is_augmented}
    out = dict(own)
    for s in samples:
        if s.is_augmented and s.augmented_from and s.augmented_from in by_path:
            out[s.id] = by_path[s.augmented_from]
    return out


def _fixed_groups(samples: Sequence[SplitSample], group_of: dict[str, str]) -> dict[str, str]:
    seen: dict[str, set[str]] = {}
    for s in samples:
        if s.split is not None:
            if s.is_augmented and s.split == "test":
                raise StateError(
                    f"sample {s.id} ({s.image_path}) is augmented but already in test; "
                    "augmented copies never belong in test: run with --reassign"
                )
            seen.setdefault(group_of[s.id], set()).add(s.split)
    straddling = sorted(g for g, sp in seen.items() if len(sp) > 1)
    if straddling:
        shown = ", ".join(f"'{g}' ({'/'.join(sorted(seen[g]))})" for g in straddling[:5])
        raise StateError(
            f"{len(straddling)} group(s) already straddle splits: {shown}; "
            "run with --reassign to split the dataset afresh"
        )
    return {g: next(iter(sp)) for g, sp in seen.items()}


def _order(group: str, vectors: dict[str, np.ndarray], request: SplitRequest) -> tuple[float, str]:
    tie = hashlib.sha256(f"{request.seed}\x00{group}".encode()).hexdigest()
    return -float(vectors[group][-1]), tie


def _apply(
    samples: Sequence[SplitSample], group_of: dict[str, str], groups: dict[str, str]
) -> SplitPlan:
    assignment: dict[str, str | None] = {}
    held_out: list[str] = []
    changed = 0
    for s in samples:
        split: str | None = groups[group_of[s.id]]
        if s.is_augmented and split == "test":
            split = None
            held_out.append(s.id)
        assignment[s.id] = split
        changed += split != s.split
    return SplitPlan(
        assignment=assignment, changed=changed, groups=groups, held_out_augmented=held_out
    )


def stratify_labels(row: dict[str, Any], stratify: Sequence[str]) -> tuple[str, ...]:
    """The labels one sample contributes: ``class`` gives one per object, ``is_compliant``
    one, any other name the sample's metadata value (``stream=front``)."""
    labels: list[str] = []
    meta = iter(row.get("meta") or ())
    for key in stratify:
        if key == "class":
            labels.extend(f"class={c}" for c in row["classes"] or ())
        elif key == "is_compliant":
            labels.append(f"is_compliant={row['is_compliant']}")
        else:
            value = next(meta, None)
            if value is not None:
                labels.append(f"{key}={value}")
    return tuple(labels)


STRATIFY_BUILTINS = ("class", "is_compliant")


def split_dataset(
    conn: Connection, dataset: Dataset, request: SplitRequest, stratify: Sequence[str]
) -> tuple[SplitPlan, dict[str, Any]]:
    """Plan and write the split of ``dataset`` in one transaction; returns the plan and its
    summary (per-split counts and label balance)."""
    if dataset.status != "collecting":
        raise StateError(
            f"dataset '{dataset.name}' is {dataset.status}; splits change only while it is "
            f"collecting (modelyard dataset set-status {dataset.name} collecting)"
        )
    meta_keys = [k for k in stratify if k not in STRATIFY_BUILTINS]
    with conn.transaction():
        rows = samples_db.split_rows(conn, dataset.id, meta_keys)
        if not rows:
            raise StateError(f"dataset '{dataset.name}' has no samples to split; ingest first")
        samples = [
            SplitSample(
                id=r["id"],
                image_path=r["image_path"],
                group_key=r["group_key"],
                split=r["split"],
                is_augmented=r["is_augmented"],
                augmented_from=r["augmented_from"],
                labels=stratify_labels(r, stratify),
            )
            for r in rows
        ]
        plan = plan_splits(samples, request)
        samples_db.write_splits(conn, dataset.id, plan.assignment)
    summary = {
        "dataset": dataset.name,
        "ratios": list(request.ratios),
        "seed": request.seed,
        "reassign": request.reassign,
        "stratify": list(stratify),
        "changed": plan.changed,
        "held_out_augmented": len(plan.held_out_augmented),
        "splits": plan.summary(samples),
    }
    log.info("split %s: %d samples changed split", dataset.name, plan.changed)
    return plan, summary
