"""Creating a sibling database (mlflow, optuna) when several processes start at once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelyard.db import connection

pytestmark = pytest.mark.postgres


def test_concurrent_creates_of_one_database_all_succeed_and_one_creates(
    pg_admin_url: str,
) -> None:
    name = f"race_{uuid.uuid4().hex[:10]}"
    try:
        for _ in range(3):  # the race is won or lost by timing: give it a few chances
            with ThreadPoolExecutor(max_workers=8) as pool:
                created = list(
                    pool.map(lambda _: connection.ensure_database(pg_admin_url, name), range(8))
                )
            assert created.count(True) == 1
            connection.drop_database(pg_admin_url, name)
    finally:
        connection.drop_database(pg_admin_url, name)
