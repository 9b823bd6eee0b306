"""A decisions dataset as the selection models read it: one ``Shot`` per photo, grouped by
burst, each in the split the group-aware splitter gave it.

Before anything trains, the decision rows are put back together from the samples and run
through the integrity gate; a failing gate, an unsplit sample or a group in two splits
stops the run (fail closed), naming what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.datasets.records import SPLITS
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import GateError, StateError
from modelyard.selection import integrity


@dataclass(frozen=True, kw_only=True)
class Shot:
    sample_id: str
    sha256: str
    file: str
    group: str
    project: str
    split: str
    action: str  # approve | crop | reject
    stage: int | None
    crop: tuple[float, float, float, float] | None

    @property
    def kept(self) -> bool:
        return self.action != "reject"


@dataclass(frozen=True, kw_only=True)
class Decisions:
    dataset: str  # its name
    dataset_id: str
    shots: tuple[Shot, ...]
    integrity: integrity.Integrity
    data_hash: str  # over (image sha256, action, crop, split, group) of every shot

    def split(self, name: str) -> list[Shot]:
        return [s for s in self.shots if s.split == name]

    def sizes(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "photos": len(self.split(name)),
                "groups": len({s.group for s in self.split(name)}),
                "crops": sum(s.action == "crop" for s in self.split(name)),
            }
            for name in SPLITS
        }


def load(conn: Connection, dataset: Dataset) -> Decisions:
    samples = samples_db.all_rows(conn, dataset.id)
    rows = [_decision_row(s) for s in samples]
    checked = integrity.check(rows)
    if not checked.passed:
        first = checked.violations[0] if checked.violations else None
        detail = f"; first: row {first.row_id} {first.field} {first.reason}" if first else ""
        raise GateError(
            f"dataset {dataset.name}: the integrity gate failed ({checked.summary()}{detail}); "
            "no selection model trains on it: `modelyard selection inspect` the source database"
        )
    shots = tuple(_shot(s) for s in samples)
    unsplit = [s for s in shots if not s.split]
    if unsplit:
        raise StateError(
            f"dataset {dataset.name}: {len(unsplit)} photos have no split "
            f"(first: {unsplit[0].file}); run `modelyard dataset split {dataset.name}` "
            "(group-aware: a burst stays in one split)"
        )
    _check_group_disjoint(shots, dataset.name)
    digest = hashlib.sha256()
    for s in sorted(shots, key=lambda s: s.sha256):
        digest.update(f"{s.sha256}\0{s.action}\0{s.crop}\0{s.split}\0{s.group}\n".encode())
    return Decisions(
        dataset=dataset.name,
        dataset_id=str(dataset.id),
        shots=shots,
        integrity=checked,
        data_hash=digest.hexdigest(),
    )


def groups(shots: Sequence[Shot]) -> list[list[Shot]]:
    """Shots by group, groups in a stable order (by name); only groups with exactly one kept
    shot and at least two shots (``unrankable`` names the others)."""
    return [g for g in _by_group(shots) if _rankable(g)]


def unrankable(shots: Sequence[Shot]) -> list[str]:
    """Groups a ranker cannot learn from: no kept shot, several, or a single shot."""
    return [g[0].group for g in _by_group(shots) if not _rankable(g)]


def _by_group(shots: Sequence[Shot]) -> list[list[Shot]]:
    by_group: dict[str, list[Shot]] = {}
    for s in shots:
        by_group.setdefault(s.group, []).append(s)
    return [sorted(by_group[g], key=lambda s: s.file) for g in sorted(by_group)]


def _rankable(group: Sequence[Shot]) -> bool:
    return len(group) >= 2 and sum(s.kept for s in group) == 1


def _check_group_disjoint(shots: Sequence[Shot], name: str) -> None:
    splits: dict[str, set[str]] = {}
    for s in shots:
        splits.setdefault(s.group, set()).add(s.split)
    straddling = sorted(g for g, found in splits.items() if len(found) > 1)
    if straddling:
        raise StateError(
            f"dataset {name}: group {straddling[0]} sits in {sorted(splits[straddling[0]])} "
            f"({len(straddling)} groups straddle splits); re-split with `modelyard dataset split "
            f"{name} --reassign`"
        )


def _action(sample: dict[str, Any]) -> str:
    source = str(sample.get("label_source") or "")
    return source.split(":", 1)[1] if source.startswith("decision:") else source


def _crop(sample: dict[str, Any]) -> tuple[float, float, float, float] | None:
    values = [sample.get(k) for k in ("crop_x1", "crop_y1", "crop_x2", "crop_y2")]
    if any(v is None for v in values):
        return None
    x1, y1, x2, y2 = (float(v) for v in values)  # type: ignore[arg-type]
    return x1, y1, x2, y2


def _decision_row(sample: dict[str, Any]) -> dict[str, Any]:
    meta = sample.get("metadata") or {}
    crop = _crop(sample)
    return {
        "id": meta.get("decision_id", str(sample["id"])),
        "project_id": meta.get("project_id"),
        "group_id": sample.get("group_key"),
        "image_path": sample["image_path"],
        "image_width": sample["width"],
        "image_height": sample["height"],
        "user_action": _action(sample),
        "final_crop_coords": list(crop) if crop else None,
    }


def _shot(sample: dict[str, Any]) -> Shot:
    meta = sample.get("metadata") or {}
    stage = meta.get("stage")
    return Shot(
        sample_id=str(sample["id"]),
        sha256=str(sample["image_sha256"]),
        file=str(sample["image_path"]),
        group=str(sample["group_key"]),
        project=str(meta.get("project_id")),
        split=str(sample["split"] or ""),
        action=_action(sample),
        stage=int(stage) if stage is not None else None,
        crop=_crop(sample) if _action(sample) == "crop" else None,
    )
