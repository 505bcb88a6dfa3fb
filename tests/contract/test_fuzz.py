"""Schemathesis against the app in process: every operation, with a valid token of each role,
on SQLite and PostgreSQL. No input may cause a 5xx, and every response must conform to the
document: status codes, content types, headers and bodies.

Driven through Schemathesis' Python API and Hypothesis directly (its pytest plugin does not
run under pytest 9), one test per operation, so a failure names the operation.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from app.core.config import Environment, Settings
from app.main import create_app
from tests.world import World

ROLES = ("system_a", "clinician_a1", "client_a1")
EXAMPLES = 4
# An opaque cursor or id can be schema-valid and still name nothing: a 4xx for it is right.
EXCLUDED = [positive_data_acceptance]


def _operation_labels() -> list[str]:
    app = create_app(Settings(_env_file=None, env=Environment.test))  # type: ignore[call-arg]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return sorted(result.ok().label for result in schema.get_all_operations())


@pytest.fixture
def fuzz_app(settings: Settings, world: World) -> Iterator[FastAPI]:
    # A second app on the same database: Schemathesis drives it from its own event loop, and a
    # pool's connections belong to the loop that opened them.
    yield create_app(settings)


@pytest.mark.parametrize("label", _operation_labels())
def test_operation_conforms(fuzz_app: FastAPI, world: World, label: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    (operation,) = [
        result.ok() for result in schema.get_all_operations() if result.ok().label == label
    ]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def conforms(case: schemathesis.Case) -> None:
        for role in ROLES:
            case.call_and_validate(headers=world.headers(role), excluded_checks=EXCLUDED)

    conforms()
