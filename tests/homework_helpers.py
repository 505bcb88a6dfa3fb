"""Shared steps for homework tests: a client in a given zone, an assignment, a query counter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import event

from app.core.clock import FixedClock
from tests.world import World


def freeze(world: World, at: str) -> FixedClock:
    clock = FixedClock(datetime.fromisoformat(at.replace("Z", "+00:00")))
    world.app.state.clock = clock
    return clock


async def new_client(http: httpx.AsyncClient, world: World, time_zone: str, **extra: Any) -> str:
    """A client of tenant A in `time_zone`, on clinician A1's care team."""
    system = world.headers("system_a")
    created = await http.post(
        "/v1/clients",
        json={
            "external_id": f"tz-{time_zone}-{len(world.a.clients)}",
            "time_zone": time_zone,
            **extra,
        },
        headers=system,
    )
    assert created.status_code == 201, created.text
    client_id: str = created.json()["id"]
    world.a.clients[client_id] = client_id
    team = await http.post(
        f"/v1/clients/{client_id}/care-team",
        json={"clinician_id": world.a.clinicians["A1"]},
        headers=system,
    )
    assert team.status_code == 201
    return client_id


async def assign(
    http: httpx.AsyncClient,
    world: World,
    client_id: str,
    schedule: dict[str, Any],
    template: str = "tpl_builtin_mood_log",
    role: str = "clinician_a1",
    **extra: Any,
) -> httpx.Response:
    return await http.post(
        "/v1/assignments",
        json={"client_id": client_id, "template_id": template, "schedule": schedule, **extra},
        headers=world.headers(role),
    )


def due_times(assignment: dict[str, Any]) -> list[str]:
    return [o["due_at"] for o in assignment["occurrences"]]


@contextmanager
def count_queries(world: World) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = world.app.state.database.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if (
            statement.lstrip()
            .upper()
            .startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA"))
        ):
            return
        # The revocation list's reload (app.core.revocations): one query per process every
        # 2 s at most, whichever request happens to find the copy stale, not that request's work.
        if "FROM token_revocations" in statement and "forget_after" in statement:
            return
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def occurrence_of(
    http: httpx.AsyncClient,
    world: World,
    client_id: str,
    schedule: dict[str, Any] | None = None,
    template: str = "tpl_builtin_mood_log",
    index: int = 0,
) -> str:
    """Assign (as clinician A1) and return the id of one of its occurrences."""
    response = await assign(
        http,
        world,
        client_id,
        schedule or {"type": "once", "due_at": "2026-11-22T20:00"},
        template=template,
    )
    assert response.status_code == 201, response.text
    occurrence_id: str = response.json()["occurrences"][index]["id"]
    return occurrence_id


async def complete(
    http: httpx.AsyncClient,
    world: World,
    occurrence_id: str,
    role: str = "client_a1",
    **body: Any,
) -> httpx.Response:
    return await http.post(
        "/v1/completions",
        json={"occurrence_id": occurrence_id, **body},
        headers=world.headers(role),
    )
