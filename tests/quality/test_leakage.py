"""The banded near-duplicate search finds exactly what brute force finds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import ConfigError
from modelyard.quality import leakage


def _brute(values: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    v = np.unique(values)
    d = np.bitwise_count(v[:, None] ^ v[None, :])
    i, j = np.nonzero(np.triu(d <= threshold, k=1))
    return {(int(v[a]), int(v[b])) for a, b in zip(i, j, strict=True)}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, leakage.MAX_HAMMING))
def test_banded_search_equals_brute_force(seed: int, threshold: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, 150, dtype=np.int64).astype(np.uint64)
    # plant neighbours at every distance up to threshold + 2
    flips = [
        np.uint64(sum(1 << int(b) for b in rng.choice(64, k, replace=False)))
        for k in rng.integers(0, threshold + 3, 60)
    ]
    values = np.concatenate([base, base[:60] ^ np.array(flips, dtype=np.uint64)])
    found = leakage.near_duplicate_pairs(values, threshold)
    got = {
        (int(found.values[a]), int(found.values[b]))
        for a, b in zip(found.left, found.right, strict=True)
    }
    assert got == _brute(values, threshold)
    assert np.all(found.distance <= threshold)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, leakage.MAX_HAMMING))
def test_pairs_between_two_sets_equals_brute_force(seed: int, threshold: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.unique(rng.integers(0, 2**63, 120, dtype=np.int64).astype(np.uint64))
    flips = [
        np.uint64(sum(1 << int(x) for x in rng.choice(64, k, replace=False)))
        for k in rng.integers(0, threshold + 3, len(a))
    ]
    b = np.unique(a ^ np.array(flips, dtype=np.uint64))
    ia, ib = leakage.pairs_between(a, b, threshold)
    d = np.bitwise_count(a[:, None] ^ b[None, :])
    want = set(zip(*np.nonzero(d <= threshold), strict=True))
    assert set(zip(ia.tolist(), ib.tolist(), strict=True)) == {(int(x), int(y)) for x, y in want}


def test_cross_split_flags_both_rows_and_names_the_partner() -> None:
    a = 0x0F0F0F0F0F0F0F0F
    values = np.array([a, a ^ 0b111, 0xFFFF0000FFFF0000, a ^ 0b1], dtype=np.uint64)
    splits = np.array([0, 2, 0, 0])  # rows 0 and 3 are near each other but both in train
    other, partner = leakage.cross_split_near_duplicates(
        values, np.ones(4, dtype=bool), splits, threshold=4
    )
    assert other.tolist() == [1, 1, 0, 1]
    assert partner[1] in (0, 3) and partner[0] == 1 and partner[3] == 1 and partner[2] == -1


def test_threshold_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="near_duplicate_hamming"):
        leakage.near_duplicate_pairs(np.zeros(3, dtype=np.uint64), leakage.MAX_HAMMING + 1)


def test_splits_per_key_counts_distinct_splits() -> None:
    keys = np.array(["g1", "g1", "g2", "g3", "g3"], dtype=object)
    splits = np.array([0, 2, 1, 1, 1])
    counts = leakage.splits_per_key(keys, splits, np.ones(5, dtype=bool))
    assert counts.tolist() == [2, 2, 1, 1, 1]


def test_parse_hashes_reads_hex_and_flags_the_rest() -> None:
    texts = np.array(
        ["00000000000000ff", "FFFFFFFFFFFFFFFF", "0123456789abcdef", "0123456789abcdeg", "abc", "",
         None, "éééééééééééééééé"],
        dtype=object,
    )  # fmt: skip
    values, valid = leakage.parse_hashes(texts)
    assert valid.tolist() == [True, True, True, False, False, False, False, False]
    assert values[:3].tolist() == [0xFF, 2**64 - 1, 0x0123456789ABCDEF]
    assert values[3:].tolist() == [0] * 5
