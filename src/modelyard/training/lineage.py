"""The lineage tags every training run carries: enough to find again the code, the data and
the settings that made a model.

``git_sha`` (with ``git_dirty``), ``dataset_id`` and ``snapshot_hash`` (from snapshot.json),
``dvc_lock_hash`` (the hashes dvc.lock records for the training inputs), ``params_hash`` (the
resolved config) and ``version.<package>`` for the packages that shape a model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PACKAGES = (
    "modelyard",
    "torch",
    "torchvision",
    "lightning",
    "transformers",
    "ultralytics",
    "mlflow",
)
UNKNOWN = "unknown"


def canonical_hash(value: Any) -> str:
    """sha256 of ``value`` as sorted, compact JSON: equal configs give equal hashes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def git_state(repo: Path) -> tuple[str, bool]:
    """(HEAD sha, whether the work tree has changes); (``unknown``, False) outside git."""
    git = shutil.which("git")
    if git is None:
        return UNKNOWN, False
    try:
        sha = subprocess.run(  # noqa: S603 - a fixed git command
            [git, "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(  # noqa: S603 - a fixed git command
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return UNKNOWN, False
    return sha, bool(status.strip())


def dvc_lock_hash(lock_file: Path, inputs: Iterable[Path], repo: Path) -> str:
    """sha256 over what dvc.lock records for the outputs that are training inputs (path and
    content hash, sorted); ``unknown`` when there is no lock or it names none of them."""
    if not lock_file.is_file():
        return UNKNOWN
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    wanted = {_relative(p, repo) for p in inputs}
    entries = sorted(
        (out["path"], out.get("md5") or out.get("hash") or "")
        for stage in (lock.get("stages") or {}).values()
        for out in stage.get("outs", [])
        if out.get("path") in wanted
    )
    return canonical_hash(entries) if entries else UNKNOWN


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def lineage_tags(
    *, snapshot: Mapping[str, Any], config: Mapping[str, Any], repo: Path, inputs: Iterable[Path]
) -> dict[str, str]:
    """The tags for a run trained from ``snapshot`` (snapshot.json's content) with ``config``."""
    sha, dirty = git_state(repo)
    tags = {
        "git_sha": sha,
        "git_dirty": str(dirty).lower(),
        "dataset_id": str(snapshot["dataset"]["id"]),
        "snapshot_hash": str(snapshot["content_hash"]),
        "dvc_lock_hash": dvc_lock_hash(repo / "dvc.lock", inputs, repo),
        "params_hash": canonical_hash(config),
    }
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    return tags


def _relative(path: Path, repo: Path) -> str:
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
