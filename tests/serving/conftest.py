"""One published policy, API keys and a live device API server per test module: the server
reloads its tables on every request (cache_ttl_s 0), so a test's change is seen at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelyard import signing
from modelyard.db import connection
from modelyard.db.connection import Connection
from modelyard.serving.api import create_app
from modelyard.serving.config import ServeParams
from modelyard.signing import SigningKey
from modelyard.storage import ObjectStore
from tests.conftest import TEMPLATE
from tests.serving import fleet


@dataclass
class World:
    url: str  # the server
    db_url: str
    conn: Connection
    store: ObjectStore
    key: SigningKey
    public_key: Path
    published: fleet.Published
    keys: dict[str, str]  # name -> secret
    key_ids: dict[str, uuid.UUID]


@pytest.fixture(scope="module")
def world(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"s_{uuid.uuid4().hex[:12]}"
    connection.ensure_database(pg_admin_url, name, template=TEMPLATE)
    db_url = connection.with_database(pg_admin_url, name)
    root = tmp_path_factory.mktemp("serving")
    key = signing.generate(root / "keys" / signing.PRIVATE_NAME)
    store = ObjectStore(str(root / "store"))
    with connection.connect(db_url) as conn:
        published = fleet.publish(conn, store, key)
        keys, ids = {}, {}
        for label, customer, scopes in (
            ("acme", "cus_acme", ["models:read", "telemetry:write"]),
            ("beta", "cus_beta", ["models:read", "telemetry:write"]),
            ("readonly", "cus_acme", ["models:read"]),
            ("telemetry_only", "cus_acme", ["telemetry:write"]),
            ("operator", "cus_acme", ["drift:read"]),
        ):
            keys[label], ids[label] = fleet.api_key(conn, customer, scopes)
        params = ServeParams(cache_ttl_s=0, rate_limit_per_s=100_000, rate_limit_burst=100_000,
                             telemetry_max_bytes=16_384)  # fmt: skip
        with fleet.live_server(create_app(db_url, store, params)) as url:
            yield World(
                url=url, db_url=db_url, conn=conn, store=store, key=key,
                public_key=signing.public_path(root / "keys" / signing.PRIVATE_NAME),
                published=published, keys=keys, key_ids=ids,
            )  # fmt: skip
    connection.drop_database(pg_admin_url, name)
