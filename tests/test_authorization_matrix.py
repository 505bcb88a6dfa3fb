"""The authorisation matrix: every route, every kind of caller, the exact status.

`MATRIX` has one entry per route of the app, keyed by `(METHOD, path template)` as in the
route table; `test_every_route_is_in_the_matrix` fails when a route has no entry (or an entry
has no route), so a new route cannot ship without saying who may call it.

The target is always tenant A's client A1 and its things (clinician A1 for clinician routes).
Rules the rows follow (PRODUCT.md "Scopes" and "API shape"):
- no token or an expired one: 401; a token without the route's scope: 403, and the scope check
  comes before the object check, so a role whose ROLE_SCOPES lack the scope gets 403 even for
  an object it could not see;
- with the scope, an object the caller may not see answers 404 (never 403): another tenant's,
  another client's, a clinician's who is not on the client's care team;
- lists answer 200 to anyone holding the scope (each sees its own rows, see
  `test_lists_show_only_what_the_caller_may_see`); creates answer 201 in the caller's tenant;
- care-team changes need `clinicians.u`, which only the vendor's backend (system) holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.core import outbound
from app.core.scopes import ROLE_SCOPES, Context, ScopeSet
from tests.world import World

# The columns: who calls. Those expected to succeed are sent last (see `_call_order`).
CALLERS = (
    "system_a",  # tenant A's backend
    "clinician_a1",  # on client A1's care team
    "clinician_a2",  # in tenant A, not on client A1's care team
    "client_a1",  # the owner
    "client_a2",  # another client of tenant A
    "system_b",  # another tenant's backend
    "none",  # no Authorization header
    "expired",  # tenant A system token, expired an hour ago
    "no_scope",  # tenant A system token holding no scope at all
)
KIND: dict[str, Context | None] = {
    "system_a": Context.system,
    "clinician_a1": Context.clinician,
    "clinician_a2": Context.clinician,
    "client_a1": Context.client,
    "client_a2": Context.client,
    "system_b": Context.system,
    "none": None,
    "expired": Context.system,
    "no_scope": Context.system,
}

Params = Callable[[World], dict[str, str]]
Body = Callable[[World], dict[str, Any] | None]
Setup = Callable[[World, httpx.AsyncClient], Awaitable[None]]


def row(*statuses: int) -> dict[str, int]:
    """One matrix row, in the order of CALLERS:
    system_a, clinician_a1, clinician_a2, client_a1, client_a2, system_b, none, expired, no_scope
    """
    assert len(statuses) == len(CALLERS), f"a row has {len(CALLERS)} columns"
    return dict(zip(CALLERS, statuses, strict=True))


def no_params(world: World) -> dict[str, str]:
    return {}


def no_body(world: World) -> dict[str, Any] | None:
    return None


@dataclass(frozen=True)
class Case:
    expect: dict[str, int]
    scope: str | None
    """`resource.permission` that `require()` demands, without the context; None: public."""
    params: Params = no_params
    body: Body = no_body
    setup: Setup | None = None
    """Runs once before the callers, e.g. to create the object the route reads."""


@dataclass(frozen=True)
class Exempt:
    reason: str


# Fillers for path parameters and bodies.

_serial = itertools.count(1)


def client_a1(world: World) -> dict[str, str]:
    return {"client_id": world.a.clients["A1"]}


def clinician_a1(world: World) -> dict[str, str]:
    return {"clinician_id": world.a.clinicians["A1"]}


def client_a1_and_clinician_a1(world: World) -> dict[str, str]:
    return {"client_id": world.a.clients["A1"], "clinician_id": world.a.clinicians["A1"]}


def new_clinician(world: World) -> dict[str, Any]:
    return {"external_id": f"matrix-cln-{next(_serial)}", "display_name": "New Clinician"}


def new_client(world: World) -> dict[str, Any]:
    return {"external_id": f"matrix-clt-{next(_serial)}", "time_zone": "Europe/Berlin"}


def clinician_a2_on_the_team(world: World) -> dict[str, Any]:
    return {"clinician_id": world.a.clinicians["A2"]}


def identity_provider(world: World) -> dict[str, Any]:
    # Issuers are unique across tenants: each request names its own.
    n = next(_serial)
    return {
        "issuer": f"https://id-{n}.vendor.example/",
        "jwks_url": f"https://id-{n}.vendor.example/.well-known/jwks.json",
        "audience": "homework-api",
    }


async def tenant_a_trusts_an_identity_provider(world: World, http: httpx.AsyncClient) -> None:
    response = await http.put(
        "/v1/identity-provider", json=identity_provider(world), headers=world.headers("system_a")
    )
    assert response.status_code == 200, response.text


# fmt: off
MATRIX: dict[tuple[str, str], Case | Exempt] = {
    # Public: no token needed, and a bad one is not even looked at.
    ("GET", "/healthz"): Case(
        scope=None,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 200,   200,   200,   200,   200,  200, 200, 200),
    ),
    ("GET", "/readyz"): Case(
        scope=None,
        expect=row(200, 200,   200,   200,   200,   200,  200, 200, 200),
    ),
    ("GET", "/.well-known/jwks.json"): Case(
        scope=None,
        expect=row(200, 200,   200,   200,   200,   200,  200, 200, 200),
    ),
    ("GET", "/.well-known/oauth-authorization-server"): Case(
        scope=None,
        expect=row(200, 200,   200,   200,   200,   200,  200, 200, 200),
    ),
    ("POST", "/oauth/token"): Exempt(
        "client credentials, not a bearer token: covered by tests/test_oauth.py"
    ),

    # Clinicians: only system provisions and changes them. A clinician sees themself and those
    # who share a client with them; a client sees its care team.
    ("POST", "/v1/clinicians"): Case(
        scope="clinicians.c", body=new_clinician,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(201, 403,   403,   403,   403,   201,  401, 401, 403),
    ),
    ("GET", "/v1/clinicians"): Case(
        scope="clinicians.s",
        expect=row(200, 200,   200,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/clinicians/{clinician_id}"): Case(
        scope="clinicians.r", params=clinician_a1,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("PATCH", "/v1/clinicians/{clinician_id}"): Case(
        scope="clinicians.u", params=clinician_a1, body=lambda w: {"display_name": "Dr A1"},
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("DELETE", "/v1/clinicians/{clinician_id}"): Case(
        scope="clinicians.d", params=clinician_a1,
        expect=row(204, 403,   403,   403,   403,   404,  401, 401, 403),
    ),

    # Clients.
    ("POST", "/v1/clients"): Case(
        scope="clients.c", body=new_client,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(201, 403,   403,   403,   403,   201,  401, 401, 403),
    ),
    # client/clients.ru has no `s`: a client reads itself by id, it cannot list.
    ("GET", "/v1/clients"): Case(
        scope="clients.s",
        expect=row(200, 200,   200,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/clients/{client_id}"): Case(
        scope="clients.r", params=client_a1,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    # `locale` is the client's own preference: clinician A1 holds clients.u and sees client A1,
    # but may change only next_session_at, so 403 (from the field check, not the scope check).
    ("PATCH", "/v1/clients/{client_id}"): Case(
        scope="clients.u", params=client_a1, body=lambda w: {"locale": "en-US"},
        expect=row(200, 403,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("DELETE", "/v1/clients/{client_id}"): Case(
        scope="clients.d", params=client_a1,
        expect=row(204, 403,   403,   403,   403,   404,  401, 401, 403),
    ),

    # Care teams: reading is reading the client; changing needs clinicians.u (system only).
    ("GET", "/v1/clients/{client_id}/care-team"): Case(
        scope="clients.r", params=client_a1,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("POST", "/v1/clients/{client_id}/care-team"): Case(
        scope="clinicians.u", params=client_a1, body=clinician_a2_on_the_team,
        expect=row(201, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("DELETE", "/v1/clients/{client_id}/care-team/{clinician_id}"): Case(
        scope="clinicians.u", params=client_a1_and_clinician_a1,
        expect=row(204, 403,   403,   403,   403,   404,  401, 401, 403),
    ),

    # The audit trail: the vendor's backend only, its own tenant's events.
    ("GET", "/v1/audit-events"): Case(
        scope="audit.s",
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 403,   403,   403,   403,   200,  401, 401, 403),
    ),

    # The tenant's identity provider: one per tenant, the vendor's backend only. Tenant A has
    # one (setup); tenant B has none, so its reads and deletes find nothing.
    ("PUT", "/v1/identity-provider"): Case(
        scope="identity.u", body=identity_provider,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 403,   403,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/identity-provider"): Case(
        scope="identity.r", setup=tenant_a_trusts_an_identity_provider,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("DELETE", "/v1/identity-provider"): Case(
        scope="identity.d", setup=tenant_a_trusts_an_identity_provider,
        expect=row(204, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
}
# fmt: on

EXEMPT = {("POST", "/oauth/token")}
CASES = {key: case for key, case in MATRIX.items() if isinstance(case, Case)}


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path template) of every APIRoute, through included routers; HEAD skipped."""
    found = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            assert route.path and route.methods
            found |= {(method, route.path) for method in route.methods if method != "HEAD"}
    return found


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    routes = routes_of(app)
    assert sorted(routes - MATRIX.keys()) == [], "routes without a matrix entry"
    assert sorted(MATRIX.keys() - routes) == [], "matrix entries without a route"


def test_the_exemptions_do_not_grow() -> None:
    assert {key for key, case in MATRIX.items() if isinstance(case, Exempt)} == EXEMPT
    assert all(case.reason for case in MATRIX.values() if isinstance(case, Exempt))


def test_the_rows_follow_the_role_scopes() -> None:
    """A role whose ROLE_SCOPES lack the route's scope is refused before anything else."""
    for key, case in CASES.items():
        if case.scope is None:
            assert set(case.expect.values()) == {200}, key
            continue
        resource, permission = case.scope.split(".")
        for caller, kind in KIND.items():
            if caller in ("none", "expired"):
                assert case.expect[caller] == 401, (key, caller)
            elif caller == "no_scope" or (
                kind is not None and not ROLE_SCOPES[kind].allows(kind, resource, permission)
            ):
                assert case.expect[caller] == 403, (key, caller)


def _call_order(case: Case) -> list[str]:
    """Everyone expected to fail first, so that they are judged against the object still
    existing; then those expected to succeed (a DELETE that works removes it)."""
    return sorted(CALLERS, key=lambda caller: case.expect[caller] < 300)


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity-provider URLs are checked against DNS: let every name resolve to a public
    address, without the network."""

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    monkeypatch.setattr(outbound, "_resolve", resolve)


def _headers(world: World, caller: str, no_scope_token: str) -> dict[str, str]:
    if caller == "no_scope":
        return {"Authorization": f"Bearer {no_scope_token}"}
    return world.headers(caller)  # "none" is no role of the world: no Authorization header


@pytest.mark.usefixtures("public_dns")
@pytest.mark.parametrize("key", list(CASES), ids=[f"{m} {p}" for m, p in CASES])
async def test_authorization_matrix(
    key: tuple[str, str], client: httpx.AsyncClient, world: World
) -> None:
    method, template = key
    case = CASES[key]
    # world.py's no_scope token holds system/templates.r; this column means no scope at all.
    no_scope_token = world.token_for(world.a, Context.system, world.a.client_id, ScopeSet())
    url = template.format(**case.params(world))
    if case.setup is not None:
        await case.setup(world, client)

    failures = []
    for caller in _call_order(case):
        response = await client.request(
            method,
            url,
            headers=_headers(world, caller, no_scope_token),
            json=case.body(world),  # None sends no body
        )
        expected = case.expect[caller]
        if response.status_code != expected:
            failures.append(f"{caller}: {response.status_code} (expected {expected})")
            continue
        failures.extend(f"{caller}: {problem}" for problem in _check_error(case, caller, response))
    assert not failures, f"{method} {template}:\n" + "\n".join(failures)


def _check_error(case: Case, caller: str, response: httpx.Response) -> list[str]:
    status = response.status_code
    if status not in (401, 403, 404):
        return []
    problems = []
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        problems.append(f"{status} is not problem+json")
    challenge = response.headers.get("www-authenticate", "")
    if status == 401:
        if not challenge.startswith("Bearer"):
            problems.append(f"401 without a Bearer challenge: {challenge!r}")
        if caller == "expired" and 'error="invalid_token"' not in challenge:
            problems.append(f"expired token: challenge {challenge!r} lacks invalid_token")
    if status == 403:
        kind = KIND[caller]
        assert kind is not None and case.scope is not None
        resource, permission = case.scope.split(".")
        from_scope_check = caller == "no_scope" or not ROLE_SCOPES[kind].allows(
            kind, resource, permission
        )
        if from_scope_check:
            wanted = f'scope="{kind}/{case.scope}"'
            if 'error="insufficient_scope"' not in challenge or wanted not in challenge:
                problems.append(f"403 challenge {challenge!r} lacks insufficient_scope {wanted}")
        elif "insufficient_scope" in challenge:
            problems.append(f"403 blames the scope, which the caller holds: {challenge!r}")
    return problems


# What lists show: nobody sees another tenant's rows, a clinician only their care teams' clients.


async def _ids(http: httpx.AsyncClient, world: World, path: str, caller: str) -> set[str]:
    response = await http.get(path, headers=world.headers(caller))
    assert response.status_code == 200, (path, caller, response.text)
    return {item["id"] for item in response.json()["data"]}


async def test_lists_show_only_what_the_caller_may_see(
    client: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a, world.b

    assert await _ids(client, world, "/v1/clients", "system_a") == {
        a.clients["A1"],
        a.clients["A2"],
    }
    assert await _ids(client, world, "/v1/clients", "clinician_a1") == {a.clients["A1"]}
    assert await _ids(client, world, "/v1/clients", "clinician_a2") == {a.clients["A2"]}
    assert await _ids(client, world, "/v1/clients", "system_b") == {b.clients["B1"]}
    # Another tenant's external_id finds nothing.
    assert await _ids(client, world, "/v1/clients?external_id=B-clt-1", "system_a") == set()
    # A client holds clients.ru, no `s`: it reads itself by id, never a list.
    refused = await client.get("/v1/clients", headers=world.headers("client_a1"))
    assert refused.status_code == 403

    assert await _ids(client, world, "/v1/clinicians", "system_a") == {
        a.clinicians["A1"],
        a.clinicians["A2"],
    }
    assert await _ids(client, world, "/v1/clinicians", "clinician_a1") == {a.clinicians["A1"]}
    assert await _ids(client, world, "/v1/clinicians", "system_b") == {b.clinicians["B1"]}

    team = await client.get(
        f"/v1/clients/{a.clients['A1']}/care-team", headers=world.headers("client_a1")
    )
    assert team.status_code == 200
    assert {c["id"] for c in team.json()["clinicians"]} == {a.clinicians["A1"]}

    # Audit events: each tenant sees only its own, though tenant A's reads were just recorded.
    events_a = (await client.get("/v1/audit-events", headers=world.headers("system_a"))).json()
    events_b = (await client.get("/v1/audit-events", headers=world.headers("system_b"))).json()
    clients_a = set(a.clients.values())
    assert {e["client_id"] for e in events_a["data"]} >= {a.clients["A1"], a.clients["A2"]}
    assert {e["client_id"] for e in events_b["data"]} <= {b.clients["B1"]}
    assert not clients_a & {e["client_id"] for e in events_b["data"]}
    assert {e["actor_id"] for e in events_b["data"]} == {b.client_id}
