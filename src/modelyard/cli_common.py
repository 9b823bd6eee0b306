"""What the command modules share: the console, a database session on a current schema, and
the bridge a release command works with (MLflow, the store, the signing key)."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from modelyard.config import Settings
from modelyard.db import migrate, stores
from modelyard.db.connection import Connection
from modelyard.storage import ObjectStore
from modelyard.tracking import ARTIFACT_ROOT, Tracker

if TYPE_CHECKING:
    from modelyard.registry.bridge import Bridge
    from modelyard.signing import SigningKey

POLICY_ASTS = Path("config/policy_asts")


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160)


def database() -> AbstractContextManager[Connection]:
    return migrate.current_session(Settings.from_env())


@contextmanager
def bridge(actor: str | None, cause: str, policy_asts: Path = POLICY_ASTS) -> Iterator[Bridge]:
    from modelyard.registry.bridge import Bridge

    settings = Settings.from_env()
    tracker = Tracker(stores.mlflow_tracking_uri(settings), ARTIFACT_ROOT).ready()
    with database() as conn:
        yield Bridge(
            conn=conn, client=tracker.client, store=ObjectStore(settings.storage_url),
            policy_asts=policy_asts, actor=actor or login(), cause=cause,
            signing=signing_key(settings),
        )  # fmt: skip


def signing_key(settings: Settings) -> SigningKey | None:
    """The bundle signing key where one is configured; without it bundles are activated
    unsigned and the device API holds them back (the bridge says so)."""
    from modelyard.signing import load_private

    return load_private(settings.signing_key) if settings.signing_key.is_file() else None


def login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")
