"""What an artifact is, for whoever ships or loads it: sha256 and size (a package folder is
hashed over its files' relative paths and bytes, in sorted order), and the versions of the
tools that wrote it."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

CHUNK = 1 << 20
TOOLS = ("torch", "onnx", "onnxruntime", "onnxslim", "onnx2tf", "tensorflow", "ai-edge-litert",
         "coremltools")  # fmt: skip


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder (``.mlpackage``) as its sorted (path, bytes) pairs."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            header = f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\0"
            digest.update(header.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def tool_versions() -> dict[str, str]:
    """Installed versions of the export tools (those not installed are left out)."""
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
