"""Damaging a stored image on purpose, wherever the store keeps it (loose or in a pack)."""

from __future__ import annotations

from pathlib import Path

from modelyard.storage import ObjectStore, packs


def corrupt(store: ObjectStore, sha256: str) -> None:
    """Overwrite the blob's bytes in place (same length, other content)."""
    where = ObjectStore(store.url).locate(sha256)
    assert where is not None, f"{sha256} is not stored"
    key, offset, length = where
    with (Path(store.url) / key).open("r+b") as fh:
        fh.seek(offset)
        flipped = bytes(b ^ 0xFF for b in fh.read(length))
        fh.seek(offset)
        fh.write(flipped)


def remove(store: ObjectStore, sha256: str) -> None:
    """Take the blob out of the store: a loose file is deleted; a packed blob is dropped
    from its pack's index."""
    where = ObjectStore(store.url).locate(sha256)
    assert where is not None, f"{sha256} is not stored"
    key = Path(store.url) / where[0]
    if key.parent.name != packs.PACK_DIR:
        key.unlink()
        return
    index = key.with_suffix(".idx")
    table = packs.decode_index(index.read_bytes(), index.name)
    rows = [(_hex(row["sha"]), int(row["offset"]), int(row["length"])) for row in table]
    kept = [row for row in rows if row[0] != sha256]
    index.write_bytes(packs.encode_index(kept))


def _hex(sha: bytes) -> str:
    return bytes(sha).ljust(32, b"\x00").hex()  # numpy drops an S32's trailing zero bytes
