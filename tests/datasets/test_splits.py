"""The group-aware split: properties over random datasets, rules, and the database round trip."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.datasets import splits
from modelyard.datasets.splits import SplitRequest, SplitSample, plan_splits
from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import StateError

REQUEST = SplitRequest(ratios=(0.7, 0.15, 0.15), seed=0)


def _sample(i: int, group: str | None, labels: tuple[str, ...] = (), **kw: object) -> SplitSample:
    return SplitSample(
        id=f"s{i}", image_path=f"img/{i}.png", group_key=group, split=None, labels=labels, **kw
    )  # type: ignore[arg-type]


@st.composite
def datasets(draw: st.DrawFn) -> list[SplitSample]:
    n_groups = draw(st.integers(1, 25))
    out = []
    for i in range(draw(st.integers(1, 120))):
        group = draw(st.one_of(st.none(), st.integers(0, n_groups).map(lambda g: f"g{g}")))
        labels = tuple(
            draw(st.lists(st.sampled_from(["class=car", "class=sign", "class=person"]), max_size=3))
        )
        out.append(_sample(i, group, labels))
    return out


def _group_splits(
    samples: list[SplitSample], assignment: dict[str, str | None]
) -> dict[str, set[str | None]]:
    seen: dict[str, set[str | None]] = {}
    for s in samples:
        seen.setdefault(s.group_key or s.id, set()).add(assignment[s.id])
    return seen


@settings(max_examples=60, deadline=None)
@given(datasets(), st.integers(0, 2**31))
def test_no_group_straddles_splits_and_every_sample_is_assigned(
    samples: list[SplitSample], seed: int
) -> None:
    plan = plan_splits(samples, SplitRequest(ratios=(0.7, 0.15, 0.15), seed=seed))
    assert set(plan.assignment) == {s.id for s in samples}
    assert all(v in ("train", "validation", "test") for v in plan.assignment.values())
    assert all(len(v) == 1 for v in _group_splits(samples, plan.assignment).values())


@settings(max_examples=40, deadline=None)
@given(datasets(), st.integers(0, 2**31), st.randoms(use_true_random=False))
def test_same_inputs_give_the_same_split_in_any_order(
    samples: list[SplitSample], seed: int, rnd: random.Random
) -> None:
    request = SplitRequest(ratios=(0.6, 0.2, 0.2), seed=seed)
    shuffled = list(samples)
    rnd.shuffle(shuffled)
    assert plan_splits(samples, request).assignment == plan_splits(shuffled, request).assignment


def test_ratios_are_met_as_closely_as_equal_groups_allow() -> None:
    samples = [_sample(i, f"g{i // 5}", ("class=car",)) for i in range(1000)]  # 200 groups of 5
    plan = plan_splits(samples, REQUEST)
    counts = {
        sp: sum(1 for v in plan.assignment.values() if v == sp)
        for sp in ("train", "validation", "test")
    }
    assert counts == {"train": 700, "validation": 150, "test": 150}


def test_rare_class_is_spread_over_the_splits() -> None:
    # 40 groups; only 8 of them hold the rare class: each split should get some of it.
    samples = []
    for g in range(40):
        rare = ("class=rare",) if g % 5 == 0 else ()
        samples += [_sample(g * 4 + k, f"g{g}", ("class=car", *rare)) for k in range(4)]
    plan = plan_splits(samples, REQUEST)
    rare_splits = {plan.assignment[s.id] for s in samples if "class=rare" in s.labels}
    assert rare_splits == {"train", "validation", "test"}


def test_seed_changes_the_assignment_of_equal_groups() -> None:
    samples = [_sample(i, f"g{i}") for i in range(60)]
    a = plan_splits(samples, SplitRequest(ratios=(0.7, 0.15, 0.15), seed=1)).assignment
    b = plan_splits(samples, SplitRequest(ratios=(0.7, 0.15, 0.15), seed=2)).assignment
    assert a != b


def test_augmented_samples_follow_their_source_and_never_land_in_test() -> None:
    samples = []
    for g in range(30):
        samples.append(_sample(g, f"g{g}"))
        # the copy names a different group_key of its own, but augmented_from wins
        samples.append(
            _sample(
                100 + g,
                f"aug{g}",
                is_augmented=True,
                augmented_from=f"img/{g}.png",
            )
        )
    plan = plan_splits(samples, REQUEST)
    for g in range(30):
        source, copy = plan.assignment[f"s{g}"], plan.assignment[f"s{100 + g}"]
        assert copy != "test"
        assert copy == (None if source == "test" else source)
    assert len(plan.held_out_augmented) == sum(
        1 for g in range(30) if plan.assignment[f"s{g}"] == "test"
    )
    assert plan.held_out_augmented


def test_existing_splits_are_kept_unless_reassign() -> None:
    samples = [_sample(i, f"g{i // 2}") for i in range(40)]
    samples[0] = SplitSample(id="s0", image_path="img/0.png", group_key="g0", split="test")
    plan = plan_splits(samples, REQUEST)
    assert plan.assignment["s0"] == "test" and plan.assignment["s1"] == "test"  # s1 shares g0
    fresh = plan_splits(samples, SplitRequest(ratios=(1.0, 0.0, 0.0), seed=0, reassign=True))
    assert set(fresh.assignment.values()) == {"train"}


def test_a_group_already_straddling_splits_is_an_error_naming_it() -> None:
    samples = [
        SplitSample(id="a", image_path="a.png", group_key="cam-7", split="train"),
        SplitSample(id="b", image_path="b.png", group_key="cam-7", split="test"),
    ]
    with pytest.raises(StateError, match=r"'cam-7' \(test/train\).*--reassign"):
        plan_splits(samples, REQUEST)


@pytest.mark.parametrize("text", ["0.7,0.3", "0.5,0.5,0.5", "a,b,c", "1.2,-0.1,-0.1"])
def test_bad_ratios_are_refused(text: str) -> None:
    with pytest.raises(StateError, match="--ratios"):
        splits.parse_ratios(text)


@pytest.mark.postgres
def test_split_dataset_writes_every_row_and_reports_balance(
    conn: Connection, demo_dataset: Dataset
) -> None:
    rows = conn.execute(
        "SELECT group_key, split FROM verify_ai_ml_samples WHERE dataset_id = %s",
        (demo_dataset.id,),
    ).fetchall()
    assert rows and all(r["split"] is not None for r in rows)
    per_group: dict[str, set[str]] = {}
    for r in rows:
        per_group.setdefault(r["group_key"], set()).add(r["split"])
    assert all(len(v) == 1 for v in per_group.values())
    # the same request again changes nothing
    _, summary = splits.split_dataset(conn, demo_dataset, REQUEST, ("class",))
    assert summary["changed"] == 0
    assert sum(summary["splits"][s]["samples"] for s in ("train", "validation", "test")) == len(
        rows
    )


@pytest.mark.postgres
def test_split_refused_unless_collecting(conn: Connection, demo_dataset: Dataset) -> None:
    conn.execute(
        "UPDATE verify_ai_ml_datasets SET status = 'ready' WHERE id = %s", (demo_dataset.id,)
    )
    ready = datasets_db.find(conn, demo_dataset.name)
    with pytest.raises(StateError, match="collecting"):
        splits.split_dataset(conn, ready, REQUEST, ("class",))


@pytest.mark.postgres
def test_split_by_a_metadata_key_keeps_each_value_in_one_split(
    conn: Connection, demo_dataset: Dataset
) -> None:
    request = SplitRequest(ratios=(0.6, 0.2, 0.2), seed=0, reassign=True, by="metadata.phase")
    _, summary = splits.split_dataset(conn, demo_dataset, request, ("class",))
    rows = conn.execute(
        "SELECT metadata ->> 'phase' AS phase, array_agg(DISTINCT split) AS splits "
        "FROM verify_ai_ml_samples WHERE dataset_id = %s GROUP BY 1",
        (demo_dataset.id,),
    ).fetchall()
    assert len(rows) == 2 and all(len(r["splits"]) == 1 for r in rows)
    assert summary["by"] == "metadata.phase"


@pytest.mark.parametrize("by", ["camera", "metadata.", ""])
def test_bad_by_is_refused(by: str) -> None:
    with pytest.raises(StateError, match="--by"):
        SplitRequest(ratios=(0.7, 0.15, 0.15), seed=0, by=by)
