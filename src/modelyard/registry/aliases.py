"""Setting a registered model's alias so that concurrent writers do not fail each other."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# How often an alias write that lost a race to another writer is tried; the retry finds the
# alias row the other writer made and updates it.
ATTEMPTS = 3


def set_alias(client: Any, name: str, alias: str, version: str) -> None:
    """``client.set_registered_model_alias``, tried again when another writer made the same
    alias between the store's read and its insert. MLflow's SQL store sets an alias by a read
    and then an insert, so two writers at once can both try the insert; the loser gets a
    unique-key error. modelyard's own writers also hold ``bundles.lock_aliases``; this covers
    the ones outside it (the MLflow UI, a script)."""
    from mlflow.exceptions import MlflowException

    for attempt in range(1, ATTEMPTS + 1):
        try:
            client.set_registered_model_alias(name, alias, version)
            return
        except MlflowException as exc:
            if attempt == ATTEMPTS or not lost_insert_race(exc):
                raise
            log.info("%s@%s: another writer set it at the same moment; trying again", name, alias)
            time.sleep(0.1 * attempt)


def lost_insert_race(exc: Exception) -> bool:
    """Whether ``exc`` is a store's unique-key refusal (PostgreSQL's or SQLite's wording)."""
    text = str(exc).lower()
    return "duplicate key" in text or "unique constraint" in text
