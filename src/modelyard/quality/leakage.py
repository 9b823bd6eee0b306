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
    values = np.unique(hashes.astype(np.uint64))
    left, right = _search(values, values, threshold, same_set=True)
    distance = np.bitwise_count(values[left] ^ values[right]).astype(np.int64)
    return NearDuplicates(values=values, left=left, right=right, distance=distance)


def pairs_between(
    queries: np.ndarray, index: np.ndarray, threshold: int
) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) for every ``queries[i]`` and ``index[j]`` within ``threshold`` bits."""
    i, q = _search(index, queries, threshold, same_set=False)
    return q, i


# Queries per pass: bounds the candidate arrays' memory whatever the input size.
_CHUNK = 65_536


def _search(
    index: np.ndarray, queries: np.ndarray, threshold: int, *, same_set: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(index row, query row) pairs within ``threshold``; with ``same_set``, each pair once."""
    if not 0 <= threshold <= MAX_HAMMING:
        raise ConfigError(
            f"validate.near_duplicate_hamming: {threshold} is outside 0..{MAX_HAMMING} "
            "(64-bit dHash; 4-10 is the usual range for near-identical photos)"
        )
    probes = _probes(threshold // BANDS)
    found_i: list[np.ndarray] = []
    found_q: list[np.ndarray] = []
    for band in range(BANDS):
        shift = np.uint64(band * BAND_BITS)
        keys = ((index >> shift) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << BAND_BITS)
        starts = np.cumsum(counts) - counts
        for lo in range(0, len(queries), _CHUNK):
            chunk = queries[lo : lo + _CHUNK]
            qkeys = ((chunk >> shift) & np.uint64(0xFFFF)).astype(np.int64)
            for probe in probes:
                q, i = _bucket_pairs(qkeys ^ probe, starts, counts, order)
                close = np.bitwise_count(chunk[q] ^ index[i]) <= threshold
                q, i = q[close] + lo, i[close]
                if same_set:
                    keep = i < q
                    q, i = q[keep], i[keep]
                found_i.append(i)
                found_q.append(q)
    n = np.int64(max(len(queries), 1))
    codes = np.concatenate([*(i * n + q for i, q in zip(found_i, found_q, strict=True)), _EMPTY])
    codes.sort()
    codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if len(codes) else codes
    return codes // n, codes % n


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
    Only pairs across splits are searched: each split's distinct hashes are queried against
    the distinct hashes of each later split.
    """
    other = np.zeros(len(hashes), dtype=np.int64)
    partner = np.full(len(hashes), -1, dtype=np.int64)
    checked = valid & (split_codes >= 0)
    rows = {s: np.flatnonzero(checked & (split_codes == s)) for s in range(3)}
    values, first_row = {}, {}
    for s in range(3):  # distinct hashes per split, and the first row holding each
        values[s], first = np.unique(hashes[rows[s]], return_index=True)
        first_row[s] = rows[s][first]
    near = {s: np.zeros(len(values[s]), dtype=np.int64) for s in range(3)}
    match: dict[int, dict[int, tuple[int, int]]] = {s: {} for s in range(3)}
    for a, b in ((0, 1), (0, 2), (1, 2)):
        if len(values[a]) == 0 or len(values[b]) == 0:
            continue
        ia, ib = pairs_between(values[a], values[b], threshold)
        np.bitwise_or.at(near[a], ia, 1 << b)
        np.bitwise_or.at(near[b], ib, 1 << a)
        for x, y in zip(ia.tolist(), ib.tolist(), strict=True):
            match[a].setdefault(x, (b, y))
            match[b].setdefault(y, (a, x))
    for s in range(3):
        where = np.searchsorted(values[s], hashes[rows[s]])
        other[rows[s]] = np.bitwise_count(near[s][where])
        flagged = near[s][where] > 0  # only these rows pay for the partner look-up
        for r, idx in zip(rows[s][flagged].tolist(), where[flagged].tolist(), strict=True):
            t, j = match[s][idx]
            partner[r] = first_row[t][j]
    return other, partner
