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
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
    by: str = "group_key"  # or "metadata.<key>": what must not straddle splits

    def __post_init__(self) -> None:
        if self.by != "group_key" and not (self.by.startswith("metadata.") and self.by[9:]):
            raise StateError(
                f"--by '{self.by}': use group_key or metadata.<key> (e.g. metadata.site)"
            )

    @property
    def metadata_group(self) -> str | None:
        return None if self.by == "group_key" else self.by.removeprefix("metadata.")


@dataclass(kw_only=True)
class SplitPlan:
    """The new split of every sample (a frame: id, old split, new split, labels)."""

    frame: pd.DataFrame
    groups: dict[str, str]
    labels: pd.DataFrame  # long format: row (position in frame), labels

    @property
    def assignment(self) -> dict[str, str | None]:
        return dict(zip(self.frame["id"], self.frame["new_split"], strict=True))

    def changes(self) -> dict[str, str | None]:
        """sample id -> new split, for the samples whose split changes."""
        f = self.frame
        moved = f.loc[f["split"].fillna("") != f["new_split"].fillna("")]
        return dict(zip(moved["id"], moved["new_split"], strict=True))

    @property
    def changed(self) -> int:
        return len(self.changes())

    @property
    def held_out_augmented(self) -> list[str]:
        f = self.frame
        ids: list[str] = f.loc[f["is_augmented"] & f["new_split"].isna(), "id"].tolist()
        return ids

    def summary(self) -> dict[str, Any]:
        """Per split: samples, groups and label counts with their share of the label."""
        f = self.frame
        codes, vocab = _label_codes(self.labels)
        new_split = f["new_split"].to_numpy(dtype=object)
        label_split = new_split[self.labels["row"].to_numpy()]
        totals = np.bincount(codes, minlength=len(vocab))
        out: dict[str, Any] = {}
        for name in SPLITS:
            counts = np.bincount(codes[label_split == name], minlength=len(vocab))
            out[name] = {
                "samples": int((new_split == name).sum()),
                "groups": sum(1 for g in self.groups.values() if g == name),
                "labels": {
                    vocab[k]: {"count": int(counts[k]), "share": round(counts[k] / totals[k], 4)}
                    for k in sorted(np.flatnonzero(counts), key=lambda k: vocab[k])
                },
            }
        out["unassigned"] = {"samples": int(pd.isna(new_split).sum())}
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
    frame = pd.DataFrame(
        {
            "id": [s.id for s in samples],
            "image_path": [s.image_path for s in samples],
            "group_key": [s.group_key for s in samples],
            "split": [s.split for s in samples],
            "is_augmented": [bool(s.is_augmented) for s in samples],
            "augmented_from": [s.augmented_from for s in samples],
            "labels": [s.labels for s in samples],
        }
    )
    return plan_frame(frame, request)


def plan_frame(
    frame: pd.DataFrame, request: SplitRequest, labels: pd.DataFrame | None = None
) -> SplitPlan:
    """``plan_splits`` over a frame (columns of ``SplitSample``); vectorised for big datasets.

    ``labels`` (long format: ``row``, ``labels``) replaces the frame's ``labels`` column.
    """
    f = frame.reset_index(drop=True).copy()
    if labels is None:
        long = f["labels"].explode().dropna()
        labels = pd.DataFrame({"row": long.index.to_numpy(), "labels": long.to_numpy()})
    f["split"] = f["split"].astype(object).where(f["split"].notna() & (f["split"] != ""), None)
    f["group"] = _groups(f)
    fixed = {} if request.reassign else _fixed_groups(f)
    vectors, vocab_size = _group_vectors(f, labels)
    groups_list = list(vectors.index)
    matrix = vectors.to_numpy(dtype=np.float64)
    ratios = np.asarray(request.ratios)
    total = matrix.sum(axis=0)
    target = ratios[:, None] * total[None, :]
    have = np.zeros_like(target)
    row_of = {g: i for i, g in enumerate(groups_list)}
    for g, sp in fixed.items():
        have[SPLITS.index(sp)] += matrix[row_of[g]]
    free = [g for g in groups_list if g not in fixed]
    free.sort(key=lambda g: (-float(matrix[row_of[g], -1]), _tie(request.seed, g)))
    weights = np.ones(matrix.shape[1])
    weights[-1] = _COUNT_WEIGHT * max(vocab_size, 1)
    open_splits = np.flatnonzero(ratios > 0)
    groups = dict(fixed)
    for g in free:
        v = matrix[row_of[g]]
        deficit = (target - have) / np.maximum(target, 1e-9)
        score = (deficit * (v > 0) * weights).sum(axis=1)
        best = int(open_splits[np.argmax(score[open_splits])])
        groups[g] = SPLITS[best]
        have[best] += v
    new = f["group"].map(groups).astype(object)
    new[f["is_augmented"].to_numpy() & (new == "test").to_numpy()] = None
    f["new_split"] = new
    return SplitPlan(frame=f, groups=groups, labels=labels)


def _tie(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}\x00{group}".encode()).hexdigest()


def _groups(f: pd.DataFrame) -> pd.Series:
    """sample -> group; ungrouped samples are groups of one; augmented follow their source."""
    own = f["group_key"].astype(object).copy()
    alone = (own.isna() | (own == "")).to_numpy()
    own[alone] = "~" + f.loc[alone, "id"].astype(str)
    augmented = f["is_augmented"].to_numpy(dtype=bool)
    if augmented.any():
        originals = ~augmented
        by_path = pd.Series(own[originals].to_numpy(), index=f.loc[originals, "image_path"])
        by_path = by_path[~by_path.index.duplicated()]
        source_group = f.loc[augmented, "augmented_from"].map(by_path)
        follows = source_group.notna()
        own[source_group.index[follows]] = source_group[follows]
    return own.astype(str)


def _fixed_groups(f: pd.DataFrame) -> dict[str, str]:
    assigned = f[f["split"].notna()]
    bad = assigned[assigned["is_augmented"] & (assigned["split"] == "test")]
    if len(bad):
        first = bad.iloc[0]
        raise StateError(
            f"sample {first['id']} ({first['image_path']}) is augmented but already in test; "
            "augmented copies never belong in test: run with --reassign"
        )
    per_group = assigned.groupby("group")["split"].agg(lambda s: tuple(sorted(set(s))))
    straddling = per_group[per_group.map(len) > 1]
    if len(straddling):
        shown = ", ".join(f"'{g}' ({'/'.join(sp)})" for g, sp in straddling.head(5).items())
        raise StateError(
            f"{len(straddling)} group(s) already straddle splits: {shown}; "
            "run with --reassign to split the dataset afresh"
        )
    return {str(g): sp[0] for g, sp in per_group.items()}


def _group_vectors(f: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Per group (sorted by name): the count of each stratification label (columns sorted by
    name) and, last, of samples, over the samples that can land in any split (not augmented).
    """
    group_codes, names = pd.factorize(f["group"], sort=True)
    codes, vocab = _label_codes(labels)
    rows = labels["row"].to_numpy()
    eligible = ~f["is_augmented"].to_numpy(dtype=bool)
    keep = eligible[rows]
    cells = group_codes[rows[keep]] * len(vocab) + codes[keep]
    counts = np.bincount(cells, minlength=len(names) * len(vocab)).reshape(len(names), -1)
    sizes = np.bincount(group_codes[eligible], minlength=len(names))
    table = pd.DataFrame(
        np.column_stack([counts, sizes]), index=names, columns=[*vocab, "__samples__"]
    )
    return table, len(vocab)


def _label_codes(labels: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The long labels as integer codes into their sorted vocabulary."""
    column = labels["labels"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = [str(c) for c in column.cat.categories]
        order = np.argsort(categories, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank[column.cat.codes.to_numpy()], [categories[i] for i in order]
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


STRATIFY_BUILTINS = ("class", "is_compliant")


def _inputs(raw: bytes, stratify: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The COPY output of ``split_inputs_csv`` as ``plan_frame``'s frame and long labels
    (``labels`` categorical: each distinct "key=value" is stored once)."""
    # object, not str: with pyarrow installed "str" columns are Arrow arrays, whose building
    # costs a second per million rows here and which the plan reads back as Python strings
    f = pd.read_csv(io.BytesIO(raw), dtype=object, keep_default_na=False, na_filter=False)
    rows: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    vocab: list[str] = []
    meta_index = 0
    for key in stratify:
        if key == "class":
            row, value = _split_joined(f["classes"].to_numpy(dtype=object), "\x1f")
        elif key == "is_compliant":
            row = np.arange(len(f))
            value = f["is_compliant"].replace("", "None").to_numpy(dtype=object)
        else:
            column = f[f"meta_{meta_index}"].to_numpy(dtype=object)
            meta_index += 1
            row = np.flatnonzero(column != "")
            value = column[row]
        local, uniques = pd.factorize(value)
        rows.append(row)
        codes.append(local + len(vocab))
        vocab.extend(f"{key}={u}" for u in uniques)
    labels = pd.DataFrame(
        {
            "row": np.concatenate([*rows, np.zeros(0, dtype=np.int64)]),
            "labels": pd.Categorical.from_codes(
                np.concatenate([*codes, np.zeros(0, dtype=np.int64)]), categories=vocab
            ),
        }
    )
    frame = pd.DataFrame(
        {
            "id": f["id"],
            "image_path": f["image_path"],
            "group_key": f["group_key"].where(f["group_key"] != "", None),
            "split": f["split"].where(f["split"] != "", None),
            "is_augmented": f["is_augmented"] == "true",
            "augmented_from": f["augmented_from"].where(f["augmented_from"] != "", None),
        }
    )
    return frame, labels


def _split_joined(column: np.ndarray, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, token) for every non-empty token of ``sep``-joined strings, in row order."""
    texts = column.tolist()
    sizes = np.fromiter(
        (t.count(sep) + 1 if t else 0 for t in texts), dtype=np.int64, count=len(texts)
    )
    tokens = np.array(sep.join(t for t in texts if t).split(sep) if sizes.any() else [], object)
    row = np.repeat(np.arange(len(texts), dtype=np.int64), sizes)
    keep = tokens != ""
    return row[keep], tokens[keep]


def plan_dataset(
    conn: Connection, dataset: Dataset, request: SplitRequest, stratify: Sequence[str]
) -> SplitPlan:
    """Read what the split needs of the dataset's samples and plan it; writes nothing."""
    stratify = list(dict.fromkeys(stratify))
    meta_keys = [k for k in stratify if k not in STRATIFY_BUILTINS]
    with conn.transaction():
        raw = samples_db.split_inputs_csv(conn, dataset.id, meta_keys, request.metadata_group)
    frame, labels = _inputs(raw, stratify)
    if frame.empty:
        raise StateError(f"dataset '{dataset.name}' has no samples to split; ingest first")
    return plan_frame(frame, request, labels)


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
    start = time.perf_counter()
    with conn.transaction():
        plan = plan_dataset(conn, dataset, request, stratify)
        planned = time.perf_counter()
        changes = plan.changes()
        samples_db.write_splits(conn, dataset.id, changes)
    written = time.perf_counter()
    summary = {
        "dataset": dataset.name,
        "ratios": list(request.ratios),
        "seed": request.seed,
        "reassign": request.reassign,
        "by": request.by,
        "stratify": list(stratify),
        "changed": len(changes),
        "held_out_augmented": len(plan.held_out_augmented),
        "splits": plan.summary(),
    }
    log.info(
        "split %s: %d samples changed split (read and plan %.1f s, write %.1f s)",
        dataset.name,
        len(changes),
        planned - start,
        written - planned,
    )
    return plan, summary
