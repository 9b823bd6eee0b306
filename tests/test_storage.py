from __future__ import annotations

from pathlib import Path

import pytest

from modelyard import storage
from modelyard.errors import IntegrityError, NotFoundError, StorageError
from modelyard.storage import ObjectStore, packs, sha256_bytes


@pytest.mark.parametrize("url", ["local", "memory://modelyard-test"])
def test_put_get_roundtrip(tmp_path: Path, url: str) -> None:
    store = ObjectStore(str(tmp_path / "s") if url == "local" else url)
    sha = store.put_blob(b"hello")
    assert sha == sha256_bytes(b"hello")
    assert store.has_blob(sha)
    assert store.get_blob(sha) == b"hello"
    assert store.put_blob(b"hello") == sha  # idempotent
    key_sha = store.put_object("verify-ai-models/p/v1/model.onnx", b"model")
    assert store.get_object("verify-ai-models/p/v1/model.onnx", key_sha) == b"model"


def test_corrupt_blob_is_detected(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    sha = store.put_blob(b"original")
    (tmp_path / store.blob_key(sha)).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.get_blob(sha)


def test_wrong_declared_sha_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError):
        ObjectStore(str(tmp_path)).put_blob(b"x", sha256="0" * 64)


def test_missing_and_bad_keys(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    with pytest.raises(NotFoundError):
        store.get_blob("0" * 64)
    with pytest.raises(StorageError):
        store.get_blob("not-a-sha")
    with pytest.raises(StorageError, match=r"\.\."):
        store.put_object("../escape", b"x")
    assert not list(tmp_path.rglob("*.tmp"))


def _stores(tmp_path: Path, url: str) -> tuple[ObjectStore, ObjectStore]:
    """Two stores on the same place: one writes, the other (as another process would) reads."""
    where = str(tmp_path / "s") if url == "local" else f"memory://{tmp_path.name}"
    return ObjectStore(where), ObjectStore(where)


@pytest.mark.parametrize("url", ["local", "memory"])
def test_packed_blobs_are_found_by_sha256(tmp_path: Path, url: str) -> None:
    writer, reader = _stores(tmp_path, url)
    loose = writer.put_blob(b"already loose")
    blobs = [b"first", b"second", b"first", b"already loose"]
    with writer.pack_writer() as pack:
        for data in blobs:
            pack.add(data, sha256_bytes(data))
    (sealed,) = pack.sealed
    for data in blobs:
        sha = sha256_bytes(data)
        assert reader.has_blob(sha) and reader.get_blob(sha) == data
    key, _, length = reader.locate(sha256_bytes(b"second")) or ("", 0, 0)
    assert key == f"packs/{sealed}.pack" and length == len(b"second")
    assert reader.locate(loose) == (writer.blob_key(loose), 0, len(b"already loose"))
    assert reader.locate("0" * 64) is None
    with pytest.raises(NotFoundError):
        reader.get_blob("0" * 64)


def test_a_pack_is_sealed_past_its_size_and_every_blob_stays_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "PACK_BYTES", 10)
    store = ObjectStore(str(tmp_path))
    data = [f"blob number {i}".encode() for i in range(5)]
    with store.pack_writer() as pack:
        for blob in data:
            pack.add(blob, sha256_bytes(blob))
    assert len(pack.sealed) == 5
    assert [ObjectStore(str(tmp_path)).get_blob(sha256_bytes(b)) for b in data] == data


def test_a_failed_or_unsealed_pack_stores_nothing(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    sha = sha256_bytes(b"half-written")
    with pytest.raises(RuntimeError), store.pack_writer() as pack:
        pack.add(b"half-written", sha)
        raise RuntimeError("the ingest failed")
    assert not ObjectStore(str(tmp_path)).has_blob(sha)
    assert [p.name for p in (tmp_path / "packs").iterdir()] == []
    # a writer killed between putting the pack in place and its index: the pack is invisible
    with store.pack_writer() as pack:
        pack.add(b"half-written", sha)
    (index,) = (tmp_path / "packs").glob("*.idx")
    index.unlink()
    assert not ObjectStore(str(tmp_path)).has_blob(sha)


def test_a_corrupt_pack_or_index_is_detected(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path))
    with store.pack_writer() as pack:
        pack.add(b"original", sha256_bytes(b"original"))
    (packed,) = (tmp_path / "packs").glob("*.pack")
    packed.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupt"):
        ObjectStore(str(tmp_path)).get_blob(sha256_bytes(b"original"))
    (index,) = (tmp_path / "packs").glob("*.idx")
    index.write_bytes(index.read_bytes()[:-5])
    with pytest.raises(IntegrityError, match="truncated"):
        ObjectStore(str(tmp_path)).has_blob(sha256_bytes(b"other"))


def test_the_index_keeps_shas_that_end_in_zero_bytes() -> None:
    shas = ["ab" * 31 + "00", "ab" * 30 + "0000", "00" * 32, "ff" * 32]
    table = packs.decode_index(
        packs.encode_index([(sha, i * 10, 10) for i, sha in enumerate(shas)]), "t"
    )
    index = packs.PackIndex()
    index.extend({"p": table})
    assert [index.find(sha) for sha in shas] == [("p", i * 10, 10) for i in range(4)]
    assert index.find("ab" * 32) is None
