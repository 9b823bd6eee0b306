"""Alias writes that race: MLflow's SQL store sets an alias by a read and then an insert, so
two writers at once can both try the insert. ``set_alias`` tries the loser again."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from modelyard.config import Settings
from modelyard.db import stores
from modelyard.registry import aliases
from modelyard.tracking import Tracker

DUPLICATE = 'duplicate key value violates unique constraint "registered_model_alias_pk"'


class Flaky:
    """A client whose first ``failures`` alias writes raise ``error``."""

    def __init__(self, failures: int, error: str) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise MlflowException(self.error)


def test_a_lost_insert_race_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aliases.time, "sleep", lambda _: None)
    client = Flaky(failures=aliases.ATTEMPTS - 1, error=DUPLICATE)
    aliases.set_alias(client, "m", "canary", "1")
    assert client.calls == aliases.ATTEMPTS


def test_other_errors_and_endless_races_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aliases.time, "sleep", lambda _: None)
    missing = Flaky(failures=1, error="Model Version (name=m, version=9) not found")
    with pytest.raises(MlflowException, match="not found"):
        aliases.set_alias(missing, "m", "canary", "9")
    assert missing.calls == 1
    endless = Flaky(failures=aliases.ATTEMPTS, error=DUPLICATE)
    with pytest.raises(MlflowException, match="duplicate key"):
        aliases.set_alias(endless, "m", "canary", "1")
    assert endless.calls == aliases.ATTEMPTS


@pytest.mark.postgres
def test_concurrent_writers_of_one_alias_all_succeed(db_url: str, tmp_path: Path) -> None:
    uri = stores.mlflow_tracking_uri(Settings.from_env({"DATABASE_URL": db_url}))
    Tracker(uri, tmp_path / "mlruns")  # creates the store
    client = MlflowClient(tracking_uri=uri)
    name = f"race-{tmp_path.name}"
    client.create_registered_model(name)
    writers = 8
    versions = [
        str(client.create_model_version(name, str(tmp_path / f"v{i}")).version)
        for i in range(writers)
    ]
    start = threading.Barrier(writers)
    errors: list[Exception] = []

    def write(version: str) -> None:
        own = MlflowClient(tracking_uri=uri)
        start.wait()
        try:
            aliases.set_alias(own, name, "canary", version)
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads: list[Any] = [threading.Thread(target=write, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert str(client.get_model_version_by_alias(name, "canary").version) in versions
