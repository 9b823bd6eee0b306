"""The object store: bytes kept under their sha256, in a local folder or at any fsspec URL.

A blob lives loose at ``blobs/<sha[:2]>/<sha>`` (``put_blob``) or in a pack with many others
(``pack_writer``, see ``packs``); ``get_blob`` finds it either way. ``put_object`` and
``get_object`` keep named objects (``verify-ai-models/<policy>/v<N>/...``) beside them. Every
read verifies the sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import uuid
from collections.abc import Iterator
from typing import BinaryIO

import fsspec

from modelyard.errors import IntegrityError, NotFoundError, StorageError
from modelyard.storage.packs import PACK_BYTES, PACK_DIR, PackIndex, decode_index, encode_index

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """Content-addressed storage over one fsspec filesystem."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self._fs, self._root = fsspec.core.url_to_fs(self.url)
        except (ValueError, ImportError) as exc:
            raise StorageError(f"cannot open object store '{url}': {exc}") from exc
        self._local = "file" in _protocols(self._fs)
        self._made_dirs: set[str] = set()
        self._packs = PackIndex()

    def blob_key(self, sha256: str) -> str:
        if not _SHA256.match(sha256):
            raise StorageError(f"'{sha256}' is not a lower-case hex sha256")
        return f"blobs/{sha256[:2]}/{sha256}"

    def has_blob(self, sha256: str) -> bool:
        return self._is_loose(sha256) or self._in_pack(sha256) is not None

    def put_blob(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` under its sha256 (computed if not given); returns the sha256."""
        digest = sha256_bytes(data)
        if sha256 is not None and sha256 != digest:
            raise IntegrityError(f"put_blob: the data's sha256 is {digest}, not {sha256}")
        if not self.has_blob(digest):
            self._write(self.blob_key(digest), data)
        return digest

    def get_blob(self, sha256: str) -> bytes:
        key = self.blob_key(sha256)
        found = self._in_pack(sha256, refresh=False)  # packs known already: no failed open
        if found is None:
            with contextlib.suppress(NotFoundError):
                return self.get_object(key, sha256)
            found = self._in_pack(sha256)
        if found is None:
            raise NotFoundError(f"object store {self.url}: no blob {sha256} (loose or packed)")
        name, offset, length = found
        key = f"{PACK_DIR}/{name}.pack"
        data = self._read_range(key, offset, length)
        if sha256_bytes(data) != sha256:
            raise IntegrityError(
                f"object store {self.url}: blob {sha256} in '{key}' (bytes {offset}-"
                f"{offset + length}) does not match its sha256; the pack is corrupt — "
                "delete it and its .idx, then ingest the images again"
            )
        return data

    def locate(self, sha256: str) -> tuple[str, int, int] | None:
        """Where a blob's bytes are: (object key, offset, length), or None if not stored."""
        key = self.blob_key(sha256)
        if self._is_loose(sha256):
            return key, 0, int(self._fs.size(self._path(key)))
        found = self._in_pack(sha256)
        if found is None:
            return None
        name, offset, length = found
        return f"{PACK_DIR}/{name}.pack", offset, length

    @contextlib.contextmanager
    def pack_writer(self) -> Iterator[PackWriter]:
        """Blobs added inside the block are stored as packs, sealed when it ends; if it
        raises, nothing of it becomes visible."""
        self.refresh_packs()
        writer = PackWriter(self)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.seal()

    def refresh_packs(self) -> None:
        """Load the indexes of packs sealed since the last look, by any process."""
        folder = self._path(PACK_DIR)
        try:
            if self._local:
                names = os.listdir(folder)
            else:
                names = [p.rsplit("/", 1)[-1] for p in self._fs.ls(folder, detail=False)]
        except FileNotFoundError:
            return
        known = set(self._packs.names)
        new = {}
        for file in sorted(names):
            name, dot, ext = file.rpartition(".")
            if dot and ext == "idx" and name not in known:
                new[name] = decode_index(self._read(f"{PACK_DIR}/{file}"), file)
        self._packs.extend(new)

    def put_object(self, key: str, data: bytes) -> str:
        """Store ``data`` under a name; returns its sha256."""
        self._write(key, data)
        return sha256_bytes(data)

    def get_object(self, key: str, sha256: str) -> bytes:
        """Read a named object and check it against the expected sha256."""
        path = self._path(key)
        try:
            with self._fs.open(path, "rb") as fh:
                data: bytes = fh.read()
        except FileNotFoundError as exc:
            raise NotFoundError(f"object store {self.url}: no object '{key}'") from exc
        digest = sha256_bytes(data)
        if digest != sha256:
            raise IntegrityError(
                f"object store {self.url}: '{key}' has sha256 {digest}, expected {sha256}; "
                "the stored copy is corrupt — put the original again"
            )
        return data

    def stat_object(self, key: str) -> tuple[int, str]:
        """(size, a version tag that changes when the object is rewritten) of a named object."""
        path = self._path(key)
        try:
            if self._local:
                st = os.stat(path)
                return st.st_size, f"{st.st_mtime_ns}:{st.st_ino}"
            info = self._fs.info(path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"object store {self.url}: no object '{key}'") from exc
        tag = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
        return int(info["size"]), str(tag)

    def check_object(self, key: str, sha256: str) -> None:
        """Read a named object through, in chunks, and check its sha256 (large artifacts:
        nothing is held in memory)."""
        digest = hashlib.sha256()
        with self.open_object(key, 0) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"object store {self.url}: '{key}' has sha256 {digest.hexdigest()}, expected "
                f"{sha256}; the stored copy is corrupt — put the original again"
            )

    def open_object(self, key: str, offset: int) -> BinaryIO:
        """A named object opened for reading from ``offset``."""
        path = self._path(key)
        try:
            handle: BinaryIO = open(path, "rb") if self._local else self._fs.open(path, "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError as exc:
            raise NotFoundError(f"object store {self.url}: no object '{key}'") from exc
        handle.seek(offset)
        return handle

    def _is_loose(self, sha256: str) -> bool:
        path = self._path(self.blob_key(sha256))
        return os.path.exists(path) if self._local else bool(self._fs.exists(path))

    def _in_pack(self, sha256: str, refresh: bool = True) -> tuple[str, int, int] | None:
        found = self._packs.find(sha256)
        if found is None and refresh:
            self.refresh_packs()
            found = self._packs.find(sha256)
        return found

    def _read(self, key: str) -> bytes:
        with self._fs.open(self._path(key), "rb") as fh:
            data: bytes = fh.read()
        return data

    def _read_range(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        try:
            if self._local:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(length)
            else:
                data = self._fs.cat_file(path, start=offset, end=offset + length)
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"object store {self.url}: pack '{key}' is missing but its index is there; "
                "delete the .idx and ingest the images again"
            ) from exc
        return data

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"object key '{key}' must be relative and must not contain '..'")
        return f"{self._root}/{key}"

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            if self._local:
                self._write_local(path, data)
            else:
                self._fs.pipe_file(path, data)
        except OSError as exc:
            raise StorageError(f"object store {self.url}: cannot write '{key}': {exc}") from exc

    def _write_local(self, path: str, data: bytes) -> None:
        """Write-then-rename, so a reader never sees a partial file (plain os calls: the
        local store is the ingest hot path)."""
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)


class PackWriter:
    """Appends blobs to a pack file (a local file as it goes, or a buffer uploaded at the
    end), sealing it and beginning another past ``PACK_BYTES``. Use ``ObjectStore.pack_writer``."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._name = ""
        self._out: BinaryIO | None = None
        self._entries: list[tuple[str, int, int]] = []
        self._size = 0
        self._added: set[str] = set()
        self.sealed: list[str] = []

    def add(self, data: bytes, sha256: str) -> None:
        """Add ``data`` unless the store has it already (loose, packed, or in this pack).
        ``sha256`` is the caller's, not hashed again here (ingest has just hashed the same
        bytes); every read checks it."""
        if sha256 in self._added or self._store._is_loose(sha256):
            return
        if self._store._in_pack(sha256, refresh=False) is not None:
            return
        out = self._out or self._begin()
        out.write(data)
        self._entries.append((sha256, self._size, len(data)))
        self._added.add(sha256)
        self._size += len(data)
        if self._size >= PACK_BYTES:
            self.seal()

    def seal(self) -> None:
        """Put the pack in place, then its index: from here on its blobs are in the store."""
        if self._out is None:
            return
        store, key = self._store, f"{PACK_DIR}/{self._name}.pack"
        index = encode_index(self._entries)
        try:
            if isinstance(self._out, io.BytesIO):
                store._fs.pipe_file(store._path(key), self._out.getvalue())
            else:
                self._out.close()
                os.replace(self._tmp_path(), store._path(key))
        except OSError as exc:
            self.abort()
            raise StorageError(f"object store {store.url}: cannot write '{key}': {exc}") from exc
        store._write(f"{PACK_DIR}/{self._name}.idx", index)
        store._packs.extend({self._name: decode_index(index, self._name)})
        self.sealed.append(self._name)
        self._out, self._entries, self._size = None, [], 0

    def abort(self) -> None:
        """Drop the pack being written; nothing of it was visible."""
        if self._out is None:
            return
        self._out.close()
        if self._store._local:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._tmp_path())
        self._out, self._entries, self._size = None, [], 0

    def _begin(self) -> BinaryIO:
        self._name = uuid.uuid4().hex
        if self._store._local:
            os.makedirs(self._store._path(PACK_DIR), exist_ok=True)
            self._out = open(self._tmp_path(), "wb")  # noqa: SIM115 - closed by seal/abort
        else:
            self._out = io.BytesIO()
        return self._out

    def _tmp_path(self) -> str:
        return self._store._path(f"{PACK_DIR}/{self._name}.pack.tmp")


def _protocols(fs: object) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
