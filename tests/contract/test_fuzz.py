"""Schemathesis against the app in process, one test per operation, on SQLite and PostgreSQL.

- Valid input (`test_operation_conforms`), with a valid token of each role: no input may
  cause a 5xx, and every response must conform to the document: status codes, content types,
  headers and bodies.
- Invalid input (`test_invalid_input_is_rejected`): every request breaks the document (a
  wrong type, a missing field, a string too long, bytes that are not JSON) and must be refused
  with a documented 4xx problem, never accepted and never a 5xx.

Driven through Schemathesis' Python API and Hypothesis directly (its pytest plugin does not
run under pytest 9), one test per operation, so a failure names the operation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from app.core.config import Environment, Settings
from app.main import create_app
from tests.world import World

ROLES = ("system_a", "clinician_a1", "client_a1")
EXAMPLES = 4
NEGATIVE_EXAMPLES = 8
# An opaque cursor or id can be schema-valid and still name nothing: a 4xx for it is right.
EXCLUDED = [positive_data_acceptance]

# What counts as refusing invalid input: the statuses this API refuses a request with. Not 401
# or 403: every request carries credentials that may call the operation (`_negative_roles`),
# so either would mean that the mutation broke the authentication, not that validation held;
# not 429 or a 5xx either. 400: the token endpoint's `invalid_request`; 404/405: a mangled
# path parameter can name no resource, or no route; 409/412: the preconditions this API
# checks; 413: the body size limit (a string far past its maxLength); 415: a media type.
REJECTED = (400, 404, 405, 409, 412, 413, 415, 422)
NEGATIVE_CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": list(REJECTED)}}}

FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


_DOCUMENT = json.dumps(create_app(Settings(_env_file=None, env=Environment.test)).openapi())  # type: ignore[call-arg]
_OPERATIONS = [
    (path, method.upper(), definition)
    for path, methods in json.loads(_DOCUMENT)["paths"].items()
    for method, definition in methods.items()
]
OPERATION_LABELS = sorted(f"{method} {path}" for path, method, _ in _OPERATIONS)
# An operation with no parameters and no body has nothing to make invalid.
INPUT_LABELS = sorted(
    f"{method} {path}"
    for path, method, definition in _OPERATIONS
    if definition.get("parameters") or definition.get("requestBody")
)


def _operation(app: FastAPI, label: str, config: dict[str, Any] | None = None) -> Any:
    """The operation, on a schema parsed afresh from the document the app serves (every app
    serves the same one; asking each test's app for it cost ~0.5 s a test). Afresh, because
    Schemathesis learns from responses as it goes, and a test must not inherit another's."""
    schema = schemathesis.openapi.from_dict(
        json.loads(_DOCUMENT), config=SchemathesisConfig.from_dict(config or {})
    )
    schema.app = app
    method, path = label.split(" ", 1)
    return schema[path][method]


_LEAST_PRIVILEGED = (("client", "client_a1"), ("clinician", "clinician_a1"))


def _negative_roles(operation: Any) -> tuple[str, ...]:
    """The least privileged callers the operation admits: a client and a clinician, whose
    rejections matter most; the system caller only where neither may call it. A caller the
    operation refuses would get a 403 whatever the input, which proves nothing."""
    security = operation.definition.raw.get("security") or []
    contexts = {
        scope.split("/")[0]
        for alternative in security
        for scopes in alternative.values()
        for scope in scopes
    }
    roles = tuple(role for context, role in _LEAST_PRIVILEGED if context in contexts)
    return roles or ("system_a",)


# The endpoints that authenticate the OAuth client rather than a bearer.
CLIENT_AUTHENTICATED = frozenset(
    {"POST /oauth/token", "POST /oauth/revoke", "POST /oauth/introspect"}
)


def _credentials(world: World, operation: Any, role: str) -> dict[str, str]:
    if operation.label in CLIENT_AUTHENTICATED:
        # With tenant A's real client credentials, a refusal is about the form (400), not
        # about who asks.
        pair = f"{world.a.client_id}:{world.a.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return world.headers(role)


# RFC 8693's subject_token and subject_token_type mean nothing to a client_credentials grant,
# and RFC 6749 section 3.2 has the token endpoint ignore parameters that do not apply: a mangled
# one there is rightly ignored (200), not refused. Only that: the other checks still run.
TOKEN_EXCHANGE_ONLY = frozenset({"subject_token", "subject_token_type"})


def _ignored_by_its_grant(case: schemathesis.Case) -> bool:
    mutations = case.meta.phase.data.mutations if case.meta is not None else ()
    return (
        case.operation.label == "POST /oauth/token"
        and isinstance(case.body, dict)
        and case.body.get("grant_type") == "client_credentials"
        and bool(mutations)
        and all(
            mutation.parameter_location.value == "body"
            and mutation.path[:1] in {(name,) for name in TOKEN_EXCHANGE_ONLY}
            for mutation in mutations
        )
    )


@pytest.fixture
def fuzz_app(settings: Settings, world: World) -> Iterator[FastAPI]:
    # A second app on the same database: Schemathesis drives it from its own event loop, and a
    # pool's connections belong to the loop that opened them.
    yield create_app(settings)


@pytest.mark.parametrize("label", OPERATION_LABELS)
def test_operation_conforms(fuzz_app: FastAPI, world: World, label: str) -> None:
    operation = _operation(fuzz_app, label)

    @given(case=operation.as_strategy())
    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    def conforms(case: schemathesis.Case) -> None:
        for role in ROLES:
            case.call_and_validate(headers=world.headers(role), excluded_checks=EXCLUDED)

    conforms()


@pytest.mark.parametrize("label", INPUT_LABELS)
def test_invalid_input_is_rejected(fuzz_app: FastAPI, world: World, label: str) -> None:
    operation = _operation(fuzz_app, label, NEGATIVE_CONFIG)
    roles = _negative_roles(operation)

    # One caller per example, drawn by Hypothesis, so that both kinds are covered without
    # paying for every example twice. The credentials are passed to the call, where they
    # replace any Authorization header the mutation made up.
    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        role=st.sampled_from(roles),
    )
    @settings(FUZZ_SETTINGS, max_examples=NEGATIVE_EXAMPLES)
    def rejected(case: schemathesis.Case, role: str) -> None:
        excluded = [negative_data_rejection] if _ignored_by_its_grant(case) else []
        case.call_and_validate(
            headers=_credentials(world, operation, role), excluded_checks=excluded
        )

    rejected()
