from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import IntegrityError, NotFoundError, StorageError
from modelyard.storage import ObjectStore, sha256_bytes


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
