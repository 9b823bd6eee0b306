"""Leakage between splits: groups and images that appear in more than one split, and
near-duplicate photos (perceptual hashes a few bits apart) across splits.

Near duplicates are found without comparing all pairs: each 64-bit hash is cut into four
16-bit bands. If two hashes differ in at most ``t`` bits, then by the pigeonhole principle
some band differs in at most ``t // 4`` bits, so probing every band's key and its neighbours
within ``t // 4`` bits finds every such pair; only those candidates are compared in full.
Identical hashes are collapsed first, so a thousand copies of one blank frame cost one entry.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from modelyard.errors import ConfigError

BANDS = 4
BAND_BITS = 16
# Band radius 2 means 137 probes per band; beyond that a brute-force pass is the better tool.
MAX_HAMMING = 4 * 3 - 1
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class NearDuplicates:
    """Pairs of distinct hash values within the threshold (indices into ``values``)."""

    values: np.ndarray  # unique uint64 hashes
    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray


def parse_hashes(hex_hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16-hex-digit strings -> (uint64 values, mask of rows that had a valid hash)."""
    valid = np.array([len(h) == 16 for h in hex_hashes], dtype=bool)
    values = np.zeros(len(hex_hashes), dtype=np.uint64)
    if valid.any():
        values[valid] = np.array([int(h, 16) for h in hex_hashes[valid]], dtype=np.uint64)
    return values, valid


def near_duplicate_pairs(hashes: np.ndarray, threshold: int) -> NearDuplicates:
    """Every pair of distinct values in ``hashes`` at Hamming distance <= ``threshold``."""
    if not 0 <= threshold <= MAX_HAMMING:
        raise ConfigError(
            f"validate.near_duplicate_hamming: {threshold} is outside 0..{MAX_HAMMING} "
            "(64-bit dHash; 4-10 is the usual range for near-identical photos)"
        )
    values = np.unique(hashes.astype(np.uint64))
    radius = threshold // BANDS
    probes = _probes(radius)
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    for band in range(BANDS):
        keys = ((values >> np.uint64(band * BAND_BITS)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << BAND_BITS)
        starts = np.cumsum(counts) - counts
        for probe in probes:
            i, j = _bucket_pairs(keys ^ probe, starts, counts, order)
            keep = i < j
            i, j = i[keep], j[keep]
            close = np.bitwise_count(values[i] ^ values[j]) <= threshold
            lefts.append(i[close])
            rights.append(j[close])
    n = np.int64(len(values))
    codes = np.concatenate([*(a * n + b for a, b in zip(lefts, rights, strict=True)), _EMPTY])
    codes.sort()
    codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if len(codes) else codes
    left, right = codes // n, codes % n
    distance = np.bitwise_count(values[left] ^ values[right]).astype(np.int64)
    return NearDuplicates(values=values, left=left, right=right, distance=distance)


def _probes(radius: int) -> list[int]:
    out = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(BAND_BITS), r):
            out.append(sum(1 << b for b in bits))
    return out


def _bucket_pairs(
    queries: np.ndarray, starts: np.ndarray, counts: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) for every i and every j whose band key equals ``queries[i]``."""
    lo, size = starts[queries], counts[queries]
    total = int(size.sum())
    if total == 0:
        return _EMPTY, _EMPTY
    i = np.repeat(np.arange(len(queries), dtype=np.int64), size)
    offsets = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
    j = order[np.repeat(lo, size) + offsets]
    return i, j.astype(np.int64)


def splits_per_key(keys: np.ndarray, splits: np.ndarray, present: np.ndarray) -> np.ndarray:
    """For each row, how many distinct splits its key appears in (0 where not ``present``)."""
    out = np.zeros(len(keys), dtype=np.int64)
    if not present.any():
        return out
    codes, key_index = np.unique(keys[present], return_inverse=True)
    split_codes = np.unique(splits[present], return_inverse=True)[1]
    mask = np.zeros(len(codes), dtype=np.int64)
    np.bitwise_or.at(mask, key_index, 1 << split_codes)
    out[present] = np.bitwise_count(mask[key_index])
    return out


def cross_split_near_duplicates(
    hashes: np.ndarray, valid: np.ndarray, split_codes: np.ndarray, threshold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (number of other splits holding a near-duplicate, the partner's row or -1).

    ``split_codes`` is 0/1/2 per row (-1 for rows outside every split, which are skipped).
    """
    rows = np.flatnonzero(valid & (split_codes >= 0))
    other = np.zeros(len(hashes), dtype=np.int64)
    partner = np.full(len(hashes), -1, dtype=np.int64)
    if len(rows) == 0:
        return other, partner
    pairs = near_duplicate_pairs(hashes[rows], threshold)
    value_of_row = np.searchsorted(pairs.values, hashes[rows])
    bit = (1 << split_codes[rows]).astype(np.int64)
    own = np.zeros(len(pairs.values), dtype=np.int64)
    np.bitwise_or.at(own, value_of_row, bit)
    near = own.copy()
    np.bitwise_or.at(near, pairs.left, own[pairs.right])
    np.bitwise_or.at(near, pairs.right, own[pairs.left])
    others = near[value_of_row] & ~bit
    other[rows] = np.bitwise_count(others)
    flagged = np.flatnonzero(others)
    if len(flagged):
        partner[rows[flagged]] = _partners(rows, value_of_row, split_codes, pairs, flagged)
    return other, partner


def _partners(
    rows: np.ndarray,
    value_of_row: np.ndarray,
    split_codes: np.ndarray,
    pairs: NearDuplicates,
    flagged: np.ndarray,
) -> np.ndarray:
    """One partner row (in another split) for each flagged row; only flagged rows pay."""
    rows_of_value: dict[int, list[int]] = {}
    for k, v in enumerate(value_of_row):
        rows_of_value.setdefault(int(v), []).append(k)
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    out = np.full(len(flagged), -1, dtype=np.int64)
    for n, k in enumerate(flagged.tolist()):
        v = int(value_of_row[k])
        my_split = split_codes[rows[k]]
        for u in [v, *sorted(neighbours.get(v, ()))]:
            match = next((m for m in rows_of_value[u] if split_codes[rows[m]] != my_split), None)
            if match is not None:
                out[n] = rows[match]
                break
    return out
