from __future__ import annotations

import pytest

from modelyard.db import datasets as datasets_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import AmbiguousNameError, NotFoundError, StateError, TransitionError

pytestmark = pytest.mark.postgres


def test_create_and_find(conn: Connection, dataset: Dataset) -> None:
    assert dataset.status == "collecting"
    assert dataset.classes == ("car", "person", "sign")
    for ref in ("cars", "test-policy/cars", str(dataset.id)):
        assert datasets_db.find(conn, ref).id == dataset.id
    with pytest.raises(NotFoundError, match="dataset list"):
        datasets_db.find(conn, "nope")


def test_duplicate_name_refused_and_ambiguous_name(conn: Connection, dataset: Dataset) -> None:
    with pytest.raises(StateError, match="already exists"):
        datasets_db.create(conn, policy_id="test-policy", name="cars", classes=[])
    datasets_db.create(conn, policy_id="other-policy", name="cars", classes=[])
    with pytest.raises(AmbiguousNameError, match="policy/name"):
        datasets_db.find(conn, "cars")


def test_bad_name_refused(conn: Connection) -> None:
    with pytest.raises(StateError, match="letters, digits"):
        datasets_db.create(conn, policy_id="p", name="has space", classes=[])


def test_legal_transitions(conn: Connection, dataset: Dataset) -> None:
    for status in ("ready", "training", "ready", "training", "archived"):
        dataset = datasets_db.set_status(conn, dataset, status)
        assert dataset.status == status
        assert datasets_db.find(conn, "cars").status == status


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), "training"),
        (("ready", "training"), "collecting"),
        (("archived",), "ready"),
        ((), "done"),
    ],
)
def test_illegal_transitions_refused(
    conn: Connection, dataset: Dataset, path: tuple[str, ...], target: str
) -> None:
    for status in path:
        dataset = datasets_db.set_status(conn, dataset, status)
    with pytest.raises(TransitionError) as info:
        datasets_db.set_status(conn, dataset, target)
    assert dataset.status in str(info.value)
    assert datasets_db.find(conn, "cars").status == dataset.status


def test_add_classes_keeps_order_and_bumps_version(conn: Connection, dataset: Dataset) -> None:
    updated = datasets_db.add_classes(conn, dataset, ["sign", "truck"])
    assert updated.classes == ("car", "person", "sign", "truck")
    assert updated.ontology_version == "2"
    assert datasets_db.add_classes(conn, updated, ["car"]) == updated
