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
- with the scope and the object in sight, a service rule may still refuse a role (a client
  changes an assignment only by proposing an adjustment; only a client has homework): 403,
  after the object check, so an object the caller may not see is still 404;
- lists answer 200 to anyone holding the scope (each sees its own rows, see
  `test_lists_show_only_what_the_caller_may_see`); creates answer 201 in the caller's tenant;
- care-team changes need `clinicians.u`, which only the vendor's backend (system) holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select

from app.core import outbound
from app.core.scopes import ALL_SCOPES, ROLE_SCOPES, Context, ScopeSet
from app.fhir.canonical import fhir_id
from app.fhir.examples import IMPORTABLE_QUESTIONNAIRE
from app.models import Event, Reminder, Template, TemplateVersion
from app.services import tenants
from app.services.webhooks import fan_out
from tests.homework_helpers import assign, complete, freeze, occurrence_of
from tests.world import World

# The columns: who calls. Those expected to succeed are sent after those expected to fail
# (see `_call_order`).
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
Setup = Callable[[World, httpx.AsyncClient], Awaitable[dict[str, str] | None]]
SetupBody = Callable[[dict[str, str]], dict[str, Any]]


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
    """Runs once before the callers, e.g. to create the object the route reads; what it returns
    fills the path parameters known only once it has run (the id of what it created)."""
    body_from_setup: SetupBody | None = None
    """Instead of `body`: a body that names what the setup made (the occurrence to complete)."""


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


def oauth_client_a(world: World) -> dict[str, str]:
    return {"oauth_client_id": world.a.client_id}


async def tenant_a_has_a_second_oauth_client(
    world: World, http: httpx.AsyncClient
) -> dict[str, str]:
    async with world.app.state.database.sessionmaker() as session, session.begin():
        issued = await tenants.create_oauth_client(session, world.a.id, "matrix", ALL_SCOPES)
    return {"oauth_client_id": issued.client_id}


def template_a(world: World) -> dict[str, str]:
    # Tenant A's template has an id known in advance (unique per test: tenant ids are), so the
    # setup inserts it under that id.
    return {"template_id": f"tpl_matrix_{world.a.id.removeprefix('ten_')}"}


def new_template(world: World) -> dict[str, Any]:
    return {
        "name": "Worry time",
        "instructions": "Set aside 15 minutes at the same time each day to write your worries.",
        "purpose": "Postponing worry shows that it can wait, and loosens its grip.",
        "estimated_minutes": 15,
        "response_schema": {
            "type": "object",
            "properties": {"worry": {"type": "string", "maxLength": 2000}},
            "required": ["worry"],
        },
        "default_reminder_local_times": ["18:00"],
    }


async def tenant_a_has_a_custom_template(world: World, http: httpx.AsyncClient) -> None:
    template_id = template_a(world)["template_id"]
    async with world.app.state.database.sessionmaker() as session, session.begin():
        session.add(Template(id=template_id, tenant_id=world.a.id, kind="custom", latest_version=1))
        await session.flush()
        session.add(TemplateVersion(template_id=template_id, number=1, **new_template(world)))


DAILY = {
    "type": "recurring",
    "rrule": "FREQ=DAILY;COUNT=5;BYHOUR=20;BYMINUTE=0",
    "start": "2026-11-22T20:00",
}


def new_assignment(world: World) -> dict[str, Any]:
    # A system caller assigns on behalf of a clinician on the care team; clinician A1 may name
    # themself.
    return {
        "client_id": world.a.clients["A1"],
        "clinician_id": world.a.clinicians["A1"],
        "template_id": "tpl_builtin_mood_log",
        "schedule": DAILY,
    }


def smaller_step(world: World) -> dict[str, Any]:
    return {"note": "Every day is too much right now", "difficulty_step": 1}


def no_note(world: World) -> dict[str, Any]:
    return {}


async def client_a1_has_an_assignment(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    created = await assign(http, world, world.a.clients["A1"], DAILY, role="clinician_a1")
    assert created.status_code == 201, created.text
    return {"assignment_id": created.json()["id"]}


async def client_a1_proposes_an_adjustment(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    made = await client_a1_has_an_assignment(world, http)
    proposed = await http.post(
        f"/v1/assignments/{made['assignment_id']}/adjustments",
        json=smaller_step(world),
        headers=world.headers("client_a1"),
    )
    assert proposed.status_code == 201, proposed.text
    return {**made, "adjustment_id": proposed.json()["id"]}


# The clock stands still at noon, eight hours before the evening's mood log is due (client A1
# is in Europe/London, on UTC in November): its occurrence is open, a completion is on time and
# editable, and its reminder (the template's default, 20:00 local) is still ahead.
NOON = "2026-11-22T12:00:00Z"
TONIGHT = {"type": "once", "due_at": "2026-11-22T20:00"}
MOOD: dict[str, Any] = {"status": "done", "answers": {"mood": 6}}


def mood_for_the_occurrence(made: dict[str, str]) -> dict[str, Any]:
    return {"occurrence_id": made["occurrence_id"], **MOOD}


def another_mood(world: World) -> dict[str, Any]:
    return {"status": "partial", "answers": {"mood": 4}, "barriers": ["no_time"]}


def feedback(world: World) -> dict[str, Any]:
    return {"feedback": "Well spotted: the walk helped."}


def half_an_hour(world: World) -> dict[str, Any]:
    return {"minutes": 30}


async def client_a1_has_an_occurrence(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    freeze(world, NOON)
    return {"occurrence_id": await occurrence_of(http, world, world.a.clients["A1"], TONIGHT)}


async def client_a1_has_a_completion(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    made = await client_a1_has_an_occurrence(world, http)
    completed = await complete(http, world, made["occurrence_id"], **MOOD)
    assert completed.status_code == 201, completed.text
    return {"completion_id": completed.json()["id"]}


async def reminders_of(world: World, client_id: str) -> set[str]:
    async with world.app.state.database.sessionmaker() as session:
        found = await session.scalars(select(Reminder.id).where(Reminder.client_id == client_id))
        return set(found.all())


async def client_a1_has_a_reminder(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    await client_a1_has_an_occurrence(world, http)
    (reminder_id,) = await reminders_of(world, world.a.clients["A1"])
    return {"reminder_id": reminder_id}


# Webhooks and events: the vendor's backend only (no clinician or client role holds `webhooks`
# or `events`). Tenant A has an endpoint, and an event sent to it (setup); tenant B sees its own.
def webhook_endpoint(world: World) -> dict[str, Any]:
    return {"url": "https://hooks.vendor.example/homework", "event_types": ["completion.created"]}


def endpoint_change(world: World) -> dict[str, Any]:
    return {"description": "Clinician inbox"}


def no_fields(world: World) -> dict[str, Any]:
    return {}


def failed_since_yesterday(world: World) -> dict[str, Any]:
    return {"since": "2026-11-21T00:00:00Z", "until": "2026-11-23T00:00:00Z"}


async def tenant_a_has_a_webhook_endpoint(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    created = await http.post(
        "/v1/webhook-endpoints", json=webhook_endpoint(world), headers=world.headers("system_a")
    )
    assert created.status_code == 201, created.text
    return {"endpoint_id": created.json()["id"]}


async def tenant_a_has_a_sent_event(world: World, http: httpx.AsyncClient) -> dict[str, str]:
    made = await tenant_a_has_a_webhook_endpoint(world, http)
    await client_a1_has_an_assignment(world, http)
    async with world.app.state.database.sessionmaker() as session, session.begin():
        await fan_out.fan_out(session, datetime.now(UTC), 100)
        event_id = await session.scalar(select(Event.id).where(Event.tenant_id == world.a.id))
    assert event_id is not None
    return {**made, "event_id": event_id}


def as_fhir(setup: Setup, made_key: str) -> Setup:
    """A setup whose object is read through /fhir/R4: its FHIR id as `resource_id`."""

    async def fhir_setup(world: World, http: httpx.AsyncClient) -> dict[str, str]:
        made = await setup(world, http)
        assert made is not None
        return {"resource_id": fhir_id(made[made_key])}

    return fhir_setup


async def tenant_a_has_a_custom_template_made(
    world: World, http: httpx.AsyncClient
) -> dict[str, str]:
    await tenant_a_has_a_custom_template(world, http)
    return template_a(world)


def fhir_client_a1(world: World) -> dict[str, str]:
    return {"resource_id": fhir_id(world.a.clients["A1"])}


def fhir_clinician_a1(world: World) -> dict[str, str]:
    return {"resource_id": fhir_id(world.a.clinicians["A1"])}


def a_questionnaire(world: World) -> dict[str, Any]:
    return IMPORTABLE_QUESTIONNAIRE


# fmt: off
MATRIX: dict[tuple[str, str], Case | Exempt] = {
    # Public: no token needed, and a bad one is not even looked at.
    ("GET", "/docs"): Case(
        scope=None,  # the offline documentation page: public, like the document it renders
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 200,   200,   200,   200,   200,  200, 200, 200),
    ),
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
    ("POST", "/oauth/revoke"): Exempt(
        "client credentials, not a bearer token: covered by tests/test_token_revocation.py"
    ),
    ("POST", "/oauth/introspect"): Exempt(
        "client credentials, not a bearer token: covered by tests/test_token_revocation.py"
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
    # Forcing a JWKS refresh (a compromised IdP key) changes the configuration: `identity.u`.
    ("POST", "/v1/identity-provider/refresh-keys"): Case(
        scope="identity.u", setup=tenant_a_trusts_an_identity_provider,
        expect=row(204, 403,   403,   403,   403,   404,  401, 401, 403),
    ),

    # The tenant's OAuth clients: the vendor's backend only, its own tenant's. The target of
    # the reads is tenant A's first client; a rotation and a revocation act on a second one
    # (setup), so that the callers after them keep a working client.
    ("GET", "/v1/identity/clients"): Case(
        scope="identity.s",
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 403,   403,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/identity/clients/{oauth_client_id}"): Case(
        scope="identity.r", params=oauth_client_a,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("POST", "/v1/identity/clients/{oauth_client_id}/rotate"): Case(
        scope="identity.u", setup=tenant_a_has_a_second_oauth_client, body=no_fields,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("POST", "/v1/identity/clients/{oauth_client_id}/revoke"): Case(
        scope="identity.d", setup=tenant_a_has_a_second_oauth_client,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),

    # Templates: built-ins are everyone's; a custom template is its tenant's, and any clinician
    # of the tenant may create, version and retire one. A client reads by id but cannot list
    # (client/templates.r has no `s`). The target is tenant A's custom template (setup);
    # retiring it twice answers 204 again.
    ("POST", "/v1/templates"): Case(
        scope="templates.c", body=new_template,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(201, 201,   201,   403,   403,   201,  401, 401, 403),
    ),
    ("GET", "/v1/templates"): Case(
        scope="templates.s",
        expect=row(200, 200,   200,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/templates/{template_id}"): Case(
        scope="templates.r", params=template_a, setup=tenant_a_has_a_custom_template,
        expect=row(200, 200,   200,   200,   200,   404,  401, 401, 403),
    ),
    ("GET", "/v1/templates/{template_id}/versions"): Case(
        scope="templates.r", params=template_a, setup=tenant_a_has_a_custom_template,
        expect=row(200, 200,   200,   200,   200,   404,  401, 401, 403),
    ),
    ("POST", "/v1/templates/{template_id}/versions"): Case(
        scope="templates.u", params=template_a, body=new_template,
        setup=tenant_a_has_a_custom_template,
        expect=row(201, 201,   201,   403,   403,   404,  401, 401, 403),
    ),
    ("DELETE", "/v1/templates/{template_id}"): Case(
        scope="templates.d", params=template_a, setup=tenant_a_has_a_custom_template,
        expect=row(204, 204,   204,   403,   403,   404,  401, 401, 403),
    ),

    # Assignments: a clinician assigns to a client on their care team, a system caller on such a
    # clinician's behalf; a client reads and lists its own (client/assignments.rus, no `c`). The
    # target is an assignment clinician A1 gave client A1 (setup).
    ("POST", "/v1/assignments"): Case(
        scope="assignments.c", body=new_assignment,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(201, 201,   404,   403,   403,   404,  401, 401, 403),
    ),
    # The preview checks what creating checks, and answers 200: nothing is made.
    ("POST", "/v1/assignments/preview"): Case(
        scope="assignments.c", body=new_assignment,
        expect=row(200, 200,   404,   403,   403,   404,  401, 401, 403),
    ),
    ("GET", "/v1/assignments"): Case(
        scope="assignments.s",
        expect=row(200, 200,   200,   200,   200,   200,  401, 401, 403),
    ),
    ("GET", "/v1/assignments/{assignment_id}"): Case(
        scope="assignments.r", setup=client_a1_has_an_assignment,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    # The client holds assignments.u and sees its assignment, but changes it only by proposing
    # an adjustment: 403 from the service, after the object check (so client A2 gets 404).
    ("PATCH", "/v1/assignments/{assignment_id}"): Case(
        scope="assignments.u", setup=client_a1_has_an_assignment,
        body=lambda w: {"title": "Evening mood check"},
        expect=row(200, 200,   404,   403,   404,   404,  401, 401, 403),
    ),
    # Cancelling a cancelled assignment answers 200 again.
    ("POST", "/v1/assignments/{assignment_id}/cancel"): Case(
        scope="assignments.u", setup=client_a1_has_an_assignment,
        expect=row(200, 200,   404,   403,   404,   404,  401, 401, 403),
    ),
    ("GET", "/v1/assignments/{assignment_id}/occurrences"): Case(
        scope="assignments.r", setup=client_a1_has_an_assignment,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),

    # Adjustments: only the client proposes (the clinical side changes the assignment instead);
    # only the clinical side accepts or declines. A proposal is resolved once: clinician A1 does
    # (200), then tenant A's backend, which could have, finds it resolved (409, run after the
    # success: see `_call_order`). The target is client A1's proposal (setup).
    ("POST", "/v1/assignments/{assignment_id}/adjustments"): Case(
        scope="assignments.u", setup=client_a1_has_an_assignment, body=smaller_step,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(403, 403,   404,   201,   404,   404,  401, 401, 403),
    ),
    ("GET", "/v1/assignments/{assignment_id}/adjustments"): Case(
        scope="assignments.r", setup=client_a1_proposes_an_adjustment,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("POST", "/v1/assignments/{assignment_id}/adjustments/{adjustment_id}/accept"): Case(
        scope="assignments.u", setup=client_a1_proposes_an_adjustment, body=no_note,
        expect=row(409, 200,   404,   403,   404,   404,  401, 401, 403),
    ),
    ("POST", "/v1/assignments/{assignment_id}/adjustments/{adjustment_id}/decline"): Case(
        scope="assignments.u", setup=client_a1_proposes_an_adjustment, body=no_note,
        expect=row(409, 200,   404,   403,   404,   404,  401, 401, 403),
    ),

    # The client's today: everyone with assignments.r passes the scope check, but only a client
    # token has homework (403 from the service for the others).
    ("GET", "/v1/me/homework"): Case(
        scope="assignments.r",
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(403, 403,   403,   200,   200,   403,  401, 401, 403),
    ),

    # Completions: the client records its own, a clinician on the care team one in session, the
    # vendor's backend one on someone's behalf. An occurrence has one completion: client A1
    # records it (201), then tenant A's backend and clinician A1, who could have, find it taken
    # (409, after the object check). The target is an open occurrence of client A1 (setup).
    ("POST", "/v1/completions"): Case(
        scope="completions.c", setup=client_a1_has_an_occurrence,
        body_from_setup=mood_for_the_occurrence,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(409, 409,   404,   201,   404,   404,  401, 401, 403),
    ),
    ("GET", "/v1/completions"): Case(
        scope="completions.s",
        expect=row(200, 200,   200,   200,   200,   200,  401, 401, 403),
    ),
    ("GET", "/v1/completions/{completion_id}"): Case(
        scope="completions.r", setup=client_a1_has_a_completion,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    # Only whoever recorded a completion (here client A1) edits it: the others who see it get
    # 403 from the service, after the object check.
    ("PUT", "/v1/completions/{completion_id}"): Case(
        scope="completions.u", setup=client_a1_has_a_completion, body=another_mood,
        expect=row(403, 403,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/v1/completions/{completion_id}/revisions"): Case(
        scope="completions.r", setup=client_a1_has_a_completion,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    # The clinical side reviews (a new review replaces the last); the client holds
    # completions.u but does not review its own work: 403 from the service.
    ("POST", "/v1/completions/{completion_id}/review"): Case(
        scope="completions.u", setup=client_a1_has_a_completion, body=feedback,
        expect=row(200, 200,   404,   403,   404,   404,  401, 401, 403),
    ),

    # Reminders: the client snoozes and dismisses its own, the vendor's backend anyone's; a
    # clinician only reads them (clinician/reminders.rs). The target is the reminder of client
    # A1's mood log tonight (setup). Snoozing a snoozed reminder again and dismissing a dismissed
    # one answer 200 again, so tenant A's backend and then client A1 both succeed.
    ("GET", "/v1/reminders"): Case(
        scope="reminders.s",
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 200,   200,   200,   200,   200,  401, 401, 403),
    ),
    ("POST", "/v1/reminders/{reminder_id}/snooze"): Case(
        scope="reminders.u", setup=client_a1_has_a_reminder, body=half_an_hour,
        expect=row(200, 403,   403,   200,   404,   404,  401, 401, 403),
    ),
    ("POST", "/v1/reminders/{reminder_id}/dismiss"): Case(
        scope="reminders.u", setup=client_a1_has_a_reminder,
        expect=row(200, 403,   403,   200,   404,   404,  401, 401, 403),
    ),

    # Adherence: reading a client's figures is reading the client; a caseload is a clinician's
    # own (a colleague's is not found) or, for the vendor's backend, any clinician's. A client
    # holds adherence.r, no `s`: no caseload.
    ("GET", "/v1/clients/{client_id}/adherence"): Case(
        scope="adherence.r", params=client_a1,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    # The same figures as a picture: the same callers.
    ("GET", "/v1/clients/{client_id}/adherence.svg"): Case(
        scope="adherence.r", params=client_a1,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/v1/clients/{client_id}/session-summary"): Case(
        scope="adherence.r", params=client_a1,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/v1/clinicians/{clinician_id}/caseload"): Case(
        scope="adherence.s", params=clinician_a1,
        expect=row(200, 200,   404,   403,   403,   404,  401, 401, 403),
    ),
    ("POST", "/v1/webhook-endpoints"): Case(
        scope="webhooks.c", body=webhook_endpoint,
        #       sys_a cln_a1 cln_a2 clt_a1 clt_a2 sys_b none exp  no_scope
        expect=row(201, 403,   403,   403,   403,   201,  401, 401, 403),
    ),
    ("GET", "/v1/webhook-endpoints"): Case(
        scope="webhooks.s",
        expect=row(200, 403,   403,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Case(
        scope="webhooks.r", setup=tenant_a_has_a_webhook_endpoint,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): Case(
        scope="webhooks.u", setup=tenant_a_has_a_webhook_endpoint, body=endpoint_change,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Case(
        scope="webhooks.d", setup=tenant_a_has_a_webhook_endpoint,
        expect=row(204, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Case(
        scope="webhooks.u", setup=tenant_a_has_a_webhook_endpoint, body=no_fields,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"): Case(
        scope="webhooks.u", setup=tenant_a_has_a_webhook_endpoint,
        expect=row(202, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): Case(
        scope="webhooks.r", setup=tenant_a_has_a_webhook_endpoint,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("GET", "/v1/events"): Case(
        scope="events.s",
        expect=row(200, 403,   403,   403,   403,   200,  401, 401, 403),
    ),
    ("POST", "/v1/events/redeliver"): Case(
        scope="events.u", body=failed_since_yesterday,
        expect=row(200, 403,   403,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/v1/events/{event_id}"): Case(
        scope="events.r", setup=tenant_a_has_a_sent_event,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),
    ("POST", "/v1/events/{event_id}/redeliver"): Case(
        scope="events.u", setup=tenant_a_has_a_sent_event, body=no_fields,
        expect=row(200, 403,   403,   403,   403,   404,  401, 401, 403),
    ),

    # FHIR R4: the /v1 scopes and visibility of the same objects, read-only. A Questionnaire is
    # a template (templates), a QuestionnaireResponse a completion (completions), a CarePlan an
    # assignment and a Task an occurrence (assignments), a Patient a client (clients), a
    # Practitioner a clinician (clinicians). The CapabilityStatement is public.
    ("GET", "/fhir/R4/metadata"): Case(
        scope=None,
        expect=row(200, 200,   200,   200,   200,   200,  200, 200, 200),
    ),
    ("POST", "/v1/templates/from-questionnaire"): Case(
        scope="templates.c", body=a_questionnaire,
        expect=row(201, 201,   201,   403,   403,   201,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Questionnaire"): Case(
        scope="templates.s",
        expect=row(200, 200,   200,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Questionnaire/{resource_id}"): Case(
        scope="templates.r", setup=as_fhir(tenant_a_has_a_custom_template_made, "template_id"),
        expect=row(200, 200,   200,   200,   200,   404,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/QuestionnaireResponse"): Case(
        scope="completions.s",
        expect=row(200, 200,   200,   200,   200,   200,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/QuestionnaireResponse/{resource_id}"): Case(
        scope="completions.r", setup=as_fhir(client_a1_has_a_completion, "completion_id"),
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/CarePlan"): Case(
        scope="assignments.s",
        expect=row(200, 200,   200,   200,   200,   200,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/CarePlan/{resource_id}"): Case(
        scope="assignments.r", setup=as_fhir(client_a1_has_an_assignment, "assignment_id"),
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Task"): Case(
        scope="assignments.s",
        expect=row(200, 200,   200,   200,   200,   200,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Task/{resource_id}"): Case(
        scope="assignments.r", setup=as_fhir(client_a1_has_an_occurrence, "occurrence_id"),
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Patient"): Case(
        scope="clients.s",
        expect=row(200, 200,   200,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Patient/{resource_id}"): Case(
        scope="clients.r", params=fhir_client_a1,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Practitioner"): Case(
        scope="clinicians.s",
        expect=row(200, 200,   200,   403,   403,   200,  401, 401, 403),
    ),
    ("GET", "/fhir/R4/Practitioner/{resource_id}"): Case(
        scope="clinicians.r", params=fhir_clinician_a1,
        expect=row(200, 200,   404,   200,   404,   404,  401, 401, 403),
    ),
}
# fmt: on

EXEMPT = {("POST", "/oauth/token"), ("POST", "/oauth/revoke"), ("POST", "/oauth/introspect")}
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
    existing; then those expected to succeed (a DELETE that works removes it); last those
    expected to conflict with what a success left (a proposal already resolved: 409)."""

    def stage(caller: str) -> int:
        status = case.expect[caller]
        return 2 if status == 409 else int(status < 300)

    return sorted(CALLERS, key=stage)


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
    freeze(world, NOON)  # DAILY's evenings are ahead: a series wholly past is refused
    # world.py's no_scope token holds system/templates.r; this column means no scope at all.
    no_scope_token = world.token_for(world.a, Context.system, world.a.client_id, ScopeSet())
    made = await case.setup(world, client) if case.setup is not None else None
    url = template.format(**case.params(world), **(made or {}))

    failures = []
    for caller in _call_order(case):
        response = await client.request(
            method,
            url,
            headers=_headers(world, caller, no_scope_token),
            # None sends no body
            json=case.body_from_setup(made or {}) if case.body_from_setup else case.body(world),
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
    # Under /fhir/ errors are OperationOutcomes, in FHIR's own media type.
    media_type = (
        "application/fhir+json"
        if response.url.path.startswith("/fhir/")
        else ("application/problem+json")
    )
    if not response.headers.get("content-type", "").startswith(media_type):
        problems.append(f"{status} is not {media_type}")
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


async def test_assignment_lists_show_only_what_the_caller_may_see(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, NOON)  # DAILY's evenings are ahead: a series wholly past is refused
    a, b = world.a, world.b
    mine = (await client_a1_has_an_assignment(world, client))["assignment_id"]
    a2 = await assign(client, world, a.clients["A2"], DAILY, role="clinician_a2")
    b1 = await assign(
        client, world, b.clients["B1"], DAILY, role="system_b", clinician_id=b.clinicians["B1"]
    )
    assert a2.status_code == b1.status_code == 201, (a2.text, b1.text)
    theirs, elsewhere = a2.json()["id"], b1.json()["id"]

    assert await _ids(client, world, "/v1/assignments", "system_a") == {mine, theirs}
    assert await _ids(client, world, "/v1/assignments", "clinician_a1") == {mine}
    assert await _ids(client, world, "/v1/assignments", "client_a1") == {mine}
    # Client A1's assignment is not another client's, nor a clinician's off its care team,
    # nor another tenant's: not even when asked for by client_id.
    assert await _ids(client, world, "/v1/assignments", "clinician_a2") == {theirs}
    assert await _ids(client, world, "/v1/assignments", "client_a2") == {theirs}
    assert await _ids(client, world, "/v1/assignments", "system_b") == {elsewhere}
    by_client = f"/v1/assignments?client_id={a.clients['A1']}"
    for caller in ("clinician_a2", "client_a2", "system_b"):
        assert await _ids(client, world, by_client, caller) == set(), caller


async def test_completion_and_reminder_lists_show_only_what_the_caller_may_see(
    client: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a, world.b
    freeze(world, NOON)
    # Each client keeps a mood log for two evenings and records the first: a completion, a
    # reminder cancelled by it and one still scheduled.
    two_evenings = {**DAILY, "rrule": "FREQ=DAILY;COUNT=2;BYHOUR=20;BYMINUTE=0"}
    made = {
        "A1": await assign(client, world, a.clients["A1"], two_evenings, role="clinician_a1"),
        "A2": await assign(client, world, a.clients["A2"], two_evenings, role="clinician_a2"),
        "B1": await assign(
            client,
            world,
            b.clients["B1"],
            two_evenings,
            role="system_b",
            clinician_id=b.clinicians["B1"],
        ),
    }
    completions, reminders = {}, {}
    for name, recorder in (("A1", "client_a1"), ("A2", "client_a2"), ("B1", "system_b")):
        assert made[name].status_code == 201, made[name].text
        first = made[name].json()["occurrences"][0]["id"]
        done = await complete(client, world, first, role=recorder, **MOOD)
        assert done.status_code == 201, done.text
        completions[name] = {done.json()["id"]}
        tenant = b if name == "B1" else a
        reminders[name] = await reminders_of(world, tenant.clients[name])
        assert len(reminders[name]) == 2, name

    sees = {
        "system_a": ("A1", "A2"),
        "clinician_a1": ("A1",),
        "client_a1": ("A1",),
        "clinician_a2": ("A2",),
        "client_a2": ("A2",),
        "system_b": ("B1",),
    }
    for path, rows in (("/v1/completions", completions), ("/v1/reminders", reminders)):
        for caller, names in sees.items():
            expected = set().union(*(rows[name] for name in names))
            assert await _ids(client, world, path, caller) == expected, (path, caller)
        # Client A1's rows are not another client's, nor a clinician's off its care team, nor
        # another tenant's: not even when asked for by client_id.
        by_client = f"{path}?client_id={a.clients['A1']}"
        for caller in ("clinician_a2", "client_a2", "system_b"):
            assert await _ids(client, world, by_client, caller) == set(), (path, caller)
