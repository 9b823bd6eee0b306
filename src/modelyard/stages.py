"""What every pipeline script shares: parsing its params, connecting, and failing loudly.

A script in ``pipelines/`` is ``main(argv) -> int``: it builds an ``argparse`` parser, then
hands a function to ``run`` — which sets up logging, loads params.yaml, and turns a
``ModelyardError`` into one log line and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelyard.config import BaseParams, Settings, load_params, section
from modelyard.db import connection, migrate
from modelyard.db.connection import Connection
from modelyard.errors import ModelyardError
from modelyard.storage import ObjectStore

log = logging.getLogger("modelyard.stages")


def parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pipelines/{stage}.py", description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return p


def run(stage: str, body: Callable[[dict[str, Any]], int], params_path: Path) -> int:
    """Run ``body(params)``; a ModelyardError becomes one error line and status 1."""
    logging.basicConfig(level=logging.INFO, format=f"{stage}: %(levelname)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        return body(load_params(params_path))
    except ModelyardError as exc:
        log.error("%s", exc)
        return 1


def base(params: dict[str, Any]) -> BaseParams:
    return section(params, "base", BaseParams)


@contextmanager
def database() -> Iterator[Connection]:
    settings = Settings.from_env()
    with connection.session(connection.database_url(settings)) as conn:
        migrate.require_current(conn, migrate.discover(migrate.default_migrations_dir()))
        yield conn


def store() -> ObjectStore:
    return ObjectStore(Settings.from_env().storage_url)
