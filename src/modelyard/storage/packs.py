"""Pack files: many blobs in one file, found through a sorted index beside it.

A pack is ``packs/<id>.pack`` (the blobs one after another) and ``packs/<id>.idx`` (for each
blob its sha256, offset and length, sorted by sha256). The pack is put in place first and its
index last, so a blob is in the store exactly when an index names it: a writer that dies
half-way leaves at most a pack nobody can see, never an index pointing at missing bytes.

Ingest writes the images of a batch as one pack: one file created for hundreds of images
instead of one (and a rename) for each, which is most of what storing an image costs.
"""

from __future__ import annotations

import numpy as np

from modelyard.errors import IntegrityError

PACK_DIR = "packs"
MAGIC = b"MODELYARD-PACK-IDX-1\n"
ENTRY = np.dtype([("sha", "S32"), ("offset", "<u8"), ("length", "<u8")])
# A pack is sealed and a new one begun once it holds this many bytes.
PACK_BYTES = 64 * 1024 * 1024


def encode_index(entries: list[tuple[str, int, int]]) -> bytes:
    """The index of a pack: (sha256 hex, offset, length) for each blob, any order."""
    table = np.array(
        [(bytes.fromhex(sha), offset, length) for sha, offset, length in entries], dtype=ENTRY
    )
    table.sort(order="sha")
    return MAGIC + np.uint64(len(table)).tobytes() + table.tobytes()


def decode_index(data: bytes, name: str) -> np.ndarray:
    head = len(MAGIC) + 8
    if not data.startswith(MAGIC) or len(data) < head:
        raise IntegrityError(f"pack index {name} is not a modelyard pack index")
    count = int(np.frombuffer(data, dtype="<u8", count=1, offset=len(MAGIC))[0])
    if len(data) != head + count * ENTRY.itemsize:
        raise IntegrityError(
            f"pack index {name} is truncated ({len(data)} bytes for {count} entries); "
            "delete it and its .pack, then ingest again"
        )
    return np.frombuffer(data, dtype=ENTRY, count=count, offset=head)


class PackIndex:
    """Every sealed pack's index, merged: sha256 -> (pack name, offset, length)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._shas = np.empty(0, dtype="S32")
        self._where = np.empty((0, 3), dtype=np.int64)  # pack number, offset, length

    def extend(self, tables: dict[str, np.ndarray]) -> None:
        """Add the indexes of newly seen packs (one merge, however many)."""
        if not tables:
            return
        shas, wheres = [self._shas], [self._where]
        for name, table in tables.items():
            number = len(self.names)
            self.names.append(name)
            shas.append(table["sha"])
            wheres.append(
                np.column_stack(
                    [
                        np.full(len(table), number, dtype=np.int64),
                        table["offset"].astype(np.int64),
                        table["length"].astype(np.int64),
                    ]
                )
            )
        merged = np.concatenate(shas)
        order = np.argsort(merged, kind="stable")
        self._shas = merged[order]
        self._where = np.concatenate(wheres)[order]

    def find(self, sha256: str) -> tuple[str, int, int] | None:
        key = bytes.fromhex(sha256)
        i = int(np.searchsorted(self._shas, np.array(key, dtype="S32")))
        # numpy hands an S32 element back without its trailing zero bytes
        if i == len(self._shas) or self._shas[i] != key.rstrip(b"\x00"):
            return None
        number, offset, length = (int(v) for v in self._where[i])
        return self.names[number], offset, length

    def __len__(self) -> int:
        return len(self._shas)
