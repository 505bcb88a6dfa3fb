"""Denied access in the audit trail: a caller of the tenant refused an object of the tenant leaves
a `denied` row (ids only), though their answer stays the 404 of an object that does not exist;
another tenant's callers leave no row in either trail; an allowed read costs what it did."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.after_rollback import keep_past_rollback, run_kept_writes
from app.core.scopes import Context
from tests.homework_helpers import assign, complete, count_queries, freeze
from tests.test_query_plans import capture, plan_nodes, seqscan_off
from tests.world import World

ONCE = {"type": "once", "due_at": "2026-11-22T20:00"}
REFLECTION = "Walked past the bakery"  # PHI: must never reach an audit row
# Every field of an audit event is a reference, an enum or a time: nothing the client said.
EVENT_FIELDS = {
    "id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "client_app_id",
    "token_id",
    "client_id",
    "action",
    "outcome",
    "resource_type",
    "resource_id",
    "request_id",
    "ip",
}


@dataclass
class Homework:
    assignment_id: str
    occurrence_id: str
    completion_id: str


@pytest.fixture
async def homework(client: httpx.AsyncClient, world: World) -> Homework:
    """Client A1's assignment (with a reminder) and completion, on clinician A1's care team."""
    freeze(world, "2026-11-22T12:00:00Z")
    assigned = await assign(
        client, world, world.a.clients["A1"], ONCE, reminders={"local_times": ["18:00"]}
    )
    assert assigned.status_code == 201, assigned.text
    occurrence_id = assigned.json()["occurrences"][0]["id"]
    done = await complete(
        client, world, occurrence_id, status="done", answers={"mood": 6}, reflection=REFLECTION
    )
    assert done.status_code == 201, done.text
    return Homework(assigned.json()["id"], occurrence_id, done.json()["id"])


async def trail(http: httpx.AsyncClient, world: World, role: str, **params: str) -> list[Any]:
    response = await http.get(
        "/v1/audit-events", params={"limit": "200", **params}, headers=world.headers(role)
    )
    assert response.status_code == 200, response.text
    events: list[Any] = response.json()["data"]
    return events


async def denials(http: httpx.AsyncClient, world: World, role: str = "system_a") -> list[Any]:
    return await trail(http, world, role, outcome="denied")


def without_request_noise(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem's body minus what differs per request (its id, its path)."""
    return {k: v for k, v in problem.items() if k not in {"instance", "request_id"}}


async def refused_read(
    http: httpx.AsyncClient, world: World, path: str, role: str, request_id: str
) -> tuple[httpx.Response, dict[str, Any]]:
    """`role` reads `path`: its 404, and the one denial that left in tenant A's trail."""
    response = await http.get(path, headers={**world.headers(role), "X-Request-Id": request_id})
    assert response.status_code == 404, response.text
    (denied,) = await denials(http, world)
    assert set(denied) == EVENT_FIELDS
    assert (denied["outcome"], denied["action"], denied["request_id"]) == (
        "denied",
        "read",
        request_id,
    )
    assert denied["client_app_id"] == world.a.client_id and denied["token_id"]
    return response, denied


@pytest.mark.parametrize(
    ("resource_type", "role", "actor"),
    [
        ("completion", "clinician_a2", ("clinician", "A2")),  # off client A1's care team
        ("assignment", "client_a2", ("client", "A2")),  # another client's
    ],
)
async def test_a_refused_read_is_a_404_and_a_denied_row(
    client: httpx.AsyncClient,
    world: World,
    homework: Homework,
    resource_type: str,
    role: str,
    actor: tuple[str, str],
) -> None:
    a = world.a
    resource_id = getattr(homework, f"{resource_type}_id")
    refused, denied = await refused_read(
        client, world, f"/v1/{resource_type}s/{resource_id}", role, f"probe-{resource_type}"
    )
    kind, name = actor
    actor_id = (a.clinicians if kind == "clinician" else a.clients)[name]
    assert (denied["actor_kind"], denied["actor_id"]) == (kind, actor_id)
    assert (denied["resource_type"], denied["resource_id"], denied["client_id"]) == (
        resource_type,
        resource_id,
        a.clients["A1"],
    )
    assert REFLECTION not in str(denied) and "Client A1" not in str(denied)
    # The answer does not change: the same 404 as for an id that exists nowhere, which itself
    # leaves no row (test_ids_not_in_the_tenant_leave_no_row).
    absent = await client.get(
        f"/v1/{resource_type}s/{resource_id[:4]}{'0' * 26}", headers=world.headers(role)
    )
    assert absent.status_code == 404
    assert without_request_noise(refused.json()) == without_request_noise(absent.json())
    assert [e["outcome"] for e in await trail(client, world, "system_a", actor_id=actor_id)] == [
        "denied"
    ]


def hidden_routes(homework: Homework, client_a1: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route whose object lookup may hide one of client A1's objects: method, path, body."""
    return [
        ("GET", f"/v1/clients/{client_a1}", {}),
        ("PATCH", f"/v1/clients/{client_a1}", {"locale": "fr-FR"}),
        ("GET", f"/v1/clients/{client_a1}/adherence", {}),
        ("GET", f"/v1/clients/{client_a1}/adherence.svg", {}),
        ("GET", f"/v1/clients/{client_a1}/session-summary", {}),
        ("GET", f"/v1/assignments/{homework.assignment_id}", {}),
        ("GET", f"/v1/assignments/{homework.assignment_id}/occurrences", {}),
        ("POST", f"/v1/assignments/{homework.assignment_id}/cancel", {}),
        ("GET", f"/v1/completions/{homework.completion_id}", {}),
        ("GET", f"/v1/completions/{homework.completion_id}/revisions", {}),
        ("POST", f"/v1/completions/{homework.completion_id}/review", {"feedback": "Well done"}),
        ("POST", "/v1/completions", {"occurrence_id": homework.occurrence_id, "status": "done"}),
    ]


EXPECTED_DENIALS = [
    ("read", "client"),
    ("update", "client"),
    ("read", "adherence"),
    ("read", "adherence"),  # the picture is the same read
    ("read", "session_summary"),
    ("read", "assignment"),
    ("read", "assignment"),
    ("update", "assignment"),
    ("read", "completion"),
    ("read", "completion"),
    ("update", "completion"),
    ("create", "occurrence"),
]


async def test_every_covered_route_records_its_denial(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    """Clinician A2 (not on client A1's care team) tries each route on client A1's objects."""
    headers = world.headers("clinician_a2")
    for method, path, body in hidden_routes(homework, world.a.clients["A1"]):
        response = await client.request(method, path, json=body or None, headers=headers)
        assert response.status_code == 404, (method, path, response.text)
    events = list(reversed(await denials(client, world)))  # oldest first, as tried
    assert [(e["action"], e["resource_type"]) for e in events] == EXPECTED_DENIALS
    assert {e["client_id"] for e in events} == {world.a.clients["A1"]}
    assert {e["actor_id"] for e in events} == {world.a.clinicians["A2"]}


async def test_a_clients_refused_reminder_is_recorded(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    reminders = await client.get(
        "/v1/reminders",
        params={"occurrence_id": homework.occurrence_id},
        headers=world.headers("system_a"),
    )
    reminder_id = reminders.json()["data"][0]["id"]
    refused = await client.post(
        f"/v1/reminders/{reminder_id}/dismiss", headers=world.headers("client_a2")
    )
    assert refused.status_code == 404
    (denied,) = await denials(client, world)
    assert (denied["action"], denied["resource_type"], denied["resource_id"]) == (
        "update",
        "reminder",
        reminder_id,
    )


async def test_the_denial_outlives_the_requests_rollback(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    """Clinician A1 may read the completion but not edit the client's own words: the lookup's
    `allowed` update row is rolled back with the request, its `denied` row is kept."""
    current = await client.get(
        f"/v1/completions/{homework.completion_id}", headers=world.headers("clinician_a1")
    )
    refused = await client.put(
        f"/v1/completions/{homework.completion_id}",
        json={"status": "done", "answers": {"mood": 1}},
        headers={**world.headers("clinician_a1"), "If-Match": current.headers["ETag"]},
    )
    assert refused.status_code == 403, refused.text
    updates = [
        (e["outcome"], e["actor_id"])
        for e in await trail(client, world, "system_a", client_id=world.a.clients["A1"])
        if e["action"] == "update" and e["resource_type"] == "completion"
    ]
    assert updates == [("denied", world.a.clinicians["A1"])]
    unchanged = await client.get(
        f"/v1/completions/{homework.completion_id}", headers=world.headers("client_a1")
    )
    assert unchanged.json()["answers"] == {"mood": 6}


async def test_another_tenants_probes_leave_no_row_in_either_trail(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    b = world.b
    before_a = await trail(client, world, "system_a")
    before_b = await trail(client, world, "system_b")
    clinician_b = world.token_for(b, Context.clinician, b.clinicians["B1"])
    for headers in (world.headers("system_b"), {"Authorization": f"Bearer {clinician_b}"}):
        for method, path, body in hidden_routes(homework, world.a.clients["A1"]):
            response = await client.request(method, path, json=body or None, headers=headers)
            assert response.status_code in (403, 404), (method, path, response.text)
    assert await trail(client, world, "system_a") == before_a
    assert await trail(client, world, "system_b") == before_b


async def test_ids_not_in_the_tenant_leave_no_row(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    """No `not_found` rows: a miss cannot be told from another tenant's id without looking
    across tenants, and that look would be the leak."""
    missing = await client.get(
        "/v1/assignments/asg_00000000000000000000000000", headers=world.headers("clinician_a2")
    )
    assert missing.status_code == 404
    assert await denials(client, world) == []


async def test_an_allowed_read_is_recorded_as_allowed_and_the_filter_splits_them(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    read = await client.get(
        f"/v1/completions/{homework.completion_id}", headers=world.headers("clinician_a1")
    )
    assert read.status_code == 200
    refused = await client.get(
        f"/v1/completions/{homework.completion_id}", headers=world.headers("clinician_a2")
    )
    assert refused.status_code == 404
    everything = await trail(client, world, "system_a")
    allowed = await trail(client, world, "system_a", outcome="allowed")
    denied = await denials(client, world)
    assert {e["outcome"] for e in allowed} == {"allowed"}
    assert [e["actor_id"] for e in denied] == [world.a.clinicians["A2"]]
    assert len(allowed) + len(denied) == len(everything)
    assert any(
        (e["actor_id"], e["action"], e["resource_id"])
        == (world.a.clinicians["A1"], "read", homework.completion_id)
        for e in allowed
    )
    # Filters combine; an outcome we do not record is refused, not silently empty.
    assert await trail(client, world, "system_a", outcome="denied", client_id="clt_other") == []
    bad = await client.get(
        "/v1/audit-events", params={"outcome": "not_found"}, headers=world.headers("system_a")
    )
    assert bad.status_code == 422


async def test_an_allowed_read_sends_no_more_statements_than_before(
    client: httpx.AsyncClient, world: World, homework: Homework
) -> None:
    """The lookup that tells a hidden object from a missing one runs on the failure path only:
    an allowed read is its select and its audit insert, as it was."""
    for path in (
        f"/v1/completions/{homework.completion_id}",
        f"/v1/assignments/{homework.assignment_id}",
    ):
        with count_queries(world) as statements:
            response = await client.get(path, headers=world.headers("clinician_a1"))
        assert response.status_code == 200
        audited = [s for s in statements if "audit_events" in s]
        assert len(audited) == 1 and audited[0].lstrip().upper().startswith("INSERT")
    with count_queries(world) as statements:
        refused = await client.get(
            f"/v1/completions/{homework.completion_id}", headers=world.headers("clinician_a2")
        )
    assert refused.status_code == 404
    # The miss, the lookup by id and tenant, the denial's insert.
    assert len([s for s in statements if "completions" in s or "audit_events" in s]) == 3


async def test_a_kept_write_that_fails_does_not_replace_the_requests_answer(
    client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(session: AsyncSession) -> None:
        raise RuntimeError("the database went away")

    async with world.app.state.database.sessionmaker() as session:
        keep_past_rollback(session, broken)
        await session.rollback()
        with caplog.at_level(logging.ERROR, logger="homework.after_rollback"):
            await run_kept_writes(session)  # does not raise
    (logged,) = [r for r in caplog.records if r.name == "homework.after_rollback"]
    assert getattr(logged, "error", None) == "RuntimeError"
    assert "went away" not in logged.getMessage()


async def test_the_denied_filter_reads_the_partial_index_of_refusals(
    client: httpx.AsyncClient, world: World, homework: Homework, postgres_only: None
) -> None:
    """Denials are rare among millions of allowed reads: the filter must reach them through
    their own index, not by walking the tenant's whole trail. The value is inlined so that even a
    prepared statement's generic plan can use the partial index."""
    for _ in range(3):
        refused = await client.get(
            f"/v1/completions/{homework.completion_id}", headers=world.headers("clinician_a2")
        )
        assert refused.status_code == 404
    engine: AsyncEngine = world.app.state.database.engine
    with capture(engine) as seen:
        assert len(await denials(client, world)) == 3
        await asyncio.sleep(0)  # asyncpg hands its log records over with call_soon
    (search,) = [c for c in seen if "FROM audit_events" in c.statement]
    assert "'denied'" in search.statement
    async with engine.connect() as connection:
        await seqscan_off(connection)
        result = await connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + search.statement, search.parameters
        )
        raw = result.scalar_one()
        await connection.rollback()
    plan = json.loads(raw) if isinstance(raw, str) else raw
    indexes = {node.get("Index Name") for node in plan_nodes(plan[0]["Plan"])}
    assert "ix_audit_events_tenant_id_outcome_id" in indexes, plan
