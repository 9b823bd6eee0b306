"""Schemathesis over the device API's own OpenAPI spec, against the live server: requests
generated from the spec, valid and invalid, never get a server error, and every answer is
one the spec declares (status code, content type, body schema).

Driven through Hypothesis directly: schemathesis' pytest plugin does not load under this
pytest (9.2)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from tests.serving.conftest import World

pytestmark = pytest.mark.postgres
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_no_server_errors_and_every_answer_is_in_the_spec(world: World) -> None:
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json")
    headers = {"Authorization": f"Bearer {world.keys['acme']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/models/latest", "/api/v1/telemetry"}
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                      database=None)  # fmt: skip
            def run(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate(base_url=world.url, headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs (/healthz)
    assert calls >= 100
