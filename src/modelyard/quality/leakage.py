"""Leakage between splits: groups and images that appear in more than one split, and
near-duplicate photos (perceptual hashes a few bits apart) across splits.

Near duplicates are found without comparing all pairs, by the pigeonhole principle: hashes
are bucketed by 16-bit keys cut from them so that any two within ``t`` bits share a key in
at least one table, and only hashes sharing a bucket are compared in full.

* ``t`` from 4 to 6: the eight bytes of a hash; ``t`` differing bits touch at most ``t``
  bytes, so some pair of bytes is equal in both: 28 tables keyed by each pair of bytes.
* otherwise: four 16-bit bands; some band differs in at most ``t // 4`` bits, so each band's
  key is probed with its neighbours within ``t // 4`` bits (4 tables, 1, 17 or 137 probes).

Identical hashes are collapsed first, so a thousand copies of one blank frame cost one entry.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
    texts = [h if type(h) is str and len(h) == 16 else "" for h in hex_hashes.tolist()]
    valid = np.fromiter((len(h) == 16 for h in texts), dtype=bool, count=len(texts))
    digits = np.full((len(texts), 16), 255, dtype=np.uint8)
    if valid.any():
        raw = "".join(texts).encode("ascii", errors="replace")  # 16 bytes per valid row
        digits[valid] = _HEX[np.frombuffer(raw, dtype=np.uint8)].reshape(-1, 16)
    valid &= (digits < 16).all(axis=1)
    digits[~valid] = 0
    packed = (digits[:, 0::2] << 4) | digits[:, 1::2]  # two hex digits per byte
    values = np.ascontiguousarray(packed).view(">u8").ravel().astype(np.uint64)
    return values, valid


# ASCII byte -> hex digit value (0-15), 255 for any other byte
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


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
    tables = _tables(threshold)
    # numpy lets go of the GIL in the gathers and compares, so the tables search in parallel
    search = functools.partial(
        _search_table, index, queries, threshold=threshold, same_set=same_set
    )
    with ThreadPoolExecutor(max_workers=min(len(tables), os.cpu_count() or 1)) as pool:
        found = list(pool.map(search, tables))
    found_i = [i for per_table in found for i, _ in per_table]
    found_q = [q for per_table in found for _, q in per_table]
    n = np.int64(max(len(queries), 1))
    codes = np.concatenate([*(i * n + q for i, q in zip(found_i, found_q, strict=True)), _EMPTY])
    codes.sort()
    codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if len(codes) else codes
    return codes // n, codes % n


KeyFn = Callable[[np.ndarray], np.ndarray]
Table = tuple[KeyFn, list[int]]


def _search_table(
    index: np.ndarray, queries: np.ndarray, table: Table, *, threshold: int, same_set: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (index row, query row) pairs within ``threshold`` that share a bucket of ``table``."""
    key, probes = table
    keys = key(index)
    order = np.argsort(keys, kind="stable")  # radix sort: the keys are uint16
    bucketed = index[order]  # each bucket's hashes side by side
    counts = np.bincount(keys, minlength=1 << BAND_BITS)
    starts = np.cumsum(counts) - counts
    out = []
    for lo in range(0, len(queries), _CHUNK):
        chunk = queries[lo : lo + _CHUNK]
        qkeys = key(chunk)
        for probe in probes:
            q, pos = _close_in_bucket(chunk, qkeys ^ probe, starts, counts, bucketed, threshold)
            i, q = order[pos], q + lo
            if same_set:
                keep = i < q
                q, i = q[keep], i[keep]
            out.append((i, q))
    return out


def _tables(threshold: int) -> list[Table]:
    """The bucket tables for ``threshold``: a uint16 key function and the probes of each."""
    if 4 <= threshold <= 6:
        return [
            (functools.partial(_byte_pair_key, i, j), [0])
            for i, j in itertools.combinations(range(8), 2)
        ]
    probes = _probes(threshold // BANDS)
    return [(functools.partial(_band_key, band), probes) for band in range(BANDS)]


def _band_key(band: int, values: np.ndarray) -> np.ndarray:
    return ((values >> np.uint64(band * BAND_BITS)) & np.uint64(0xFFFF)).astype(np.uint16)


def _byte_pair_key(i: int, j: int, values: np.ndarray) -> np.ndarray:
    high = (values >> np.uint64(8 * i)) & np.uint64(0xFF)
    low = (values >> np.uint64(8 * j)) & np.uint64(0xFF)
    return ((high << np.uint64(8)) | low).astype(np.uint16)


def _probes(radius: int) -> list[int]:
    out = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(BAND_BITS), r):
            out.append(sum(1 << b for b in bits))
    return out


def _close_in_bucket(
    queries: np.ndarray,
    keys: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    bucketed: np.ndarray,
    threshold: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(query row, bucketed position) of every hash in each query's bucket within
    ``threshold`` bits. Step d compares each query with the d-th hash of its bucket, so the
    work is one pass per candidate pair and no pair list is ever built."""
    first, size = starts[keys], counts[keys]
    active = np.flatnonzero(size > 0)
    found_q: list[np.ndarray] = [_EMPTY]
    found_pos: list[np.ndarray] = [_EMPTY]
    step = 0
    while len(active):
        pos = first[active] + step
        close = np.bitwise_count(queries[active] ^ bucketed[pos]) <= threshold
        if close.any():
            found_q.append(active[close])
            found_pos.append(pos[close])
        step += 1
        active = active[size[active] > step]
    return np.concatenate(found_q), np.concatenate(found_pos)


def splits_per_key(keys: np.ndarray, splits: np.ndarray, present: np.ndarray) -> np.ndarray:
    """For each row, how many distinct splits its key appears in (0 where not ``present``)."""
    out = np.zeros(len(keys), dtype=np.int64)
    if not present.any():
        return out
    key_index, uniques = pd.factorize(keys[present])  # hashing, not sorting, the strings
    where = splits[present]
    per_key = np.zeros(len(uniques), dtype=np.int64)
    for split in np.unique(where):
        per_key += np.bincount(key_index[where == split], minlength=len(uniques)) > 0
    out[present] = per_key[key_index]
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
