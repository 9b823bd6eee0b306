"""The object store: bytes kept under their sha256, in a local folder or at any fsspec URL.

Blobs live at ``blobs/<sha[:2]>/<sha>``; ``put_object``/``get_object`` keep named objects
(``verify-ai-models/<policy>/v<N>/...``) beside them. Every read verifies the sha256.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid

import fsspec

from modelyard.errors import IntegrityError, NotFoundError, StorageError

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

    def blob_key(self, sha256: str) -> str:
        if not _SHA256.match(sha256):
            raise StorageError(f"'{sha256}' is not a lower-case hex sha256")
        return f"blobs/{sha256[:2]}/{sha256}"

    def has_blob(self, sha256: str) -> bool:
        path = self._path(self.blob_key(sha256))
        return os.path.exists(path) if self._local else bool(self._fs.exists(path))

    def put_blob(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` under its sha256 (computed if not given); returns the sha256."""
        digest = sha256_bytes(data)
        if sha256 is not None and sha256 != digest:
            raise IntegrityError(f"put_blob: the data's sha256 is {digest}, not {sha256}")
        if not self.has_blob(digest):
            self._write(self.blob_key(digest), data)
        return digest

    def get_blob(self, sha256: str) -> bytes:
        return self.get_object(self.blob_key(sha256), sha256)

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


def _protocols(fs: object) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
