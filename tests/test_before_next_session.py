"""Homework due before the next session waits for a booking (issue 17).

A cleared session, or one moved into the past, takes the occurrence back to "waiting for a
session": no due time, no occurrence, no reminders, the assignment still active. The next
booking brings it back with its reminders. Work already done stays done.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from app.models import Event
from app.worker.loop import run_once
from tests.homework_helpers import assign, complete, freeze, new_client
from tests.test_reminders import assigned, at, client_with_token, listed
from tests.worker.test_occurrence_jobs import BATCH, read
from tests.world import World

BOOKED = "2026-11-26T15:00:00Z"
BEFORE_SESSION = {"type": "before_next_session"}
AN_HOUR_BEFORE = {"lead_minutes": [60]}


async def booked_client(http: httpx.AsyncClient, world: World) -> str:
    """A client in New York with a session on Thursday; today is the Sunday before."""
    freeze(world, "2026-11-22T09:00:00Z")
    return await client_with_token(http, world, "America/New_York", next_session_at=BOOKED)


async def run_worker(world: World, now: str) -> dict[str, int]:
    return await run_once(world.app.state.database, at(now), BATCH)


async def book(http: httpx.AsyncClient, world: World, client_id: str, at: str | None) -> None:
    response = await http.patch(
        f"/v1/clients/{client_id}",
        json={"next_session_at": at},
        headers=world.headers("clinician_a1"),
    )
    assert response.status_code == 200, response.text


async def pending_reminders(http: httpx.AsyncClient, world: World, client_id: str) -> list[str]:
    return [
        r["due_at"]
        for r in await listed(http, world, client_id=client_id)
        if r["state"] in ("scheduled", "snoozed")
    ]


async def occurrences_of(
    http: httpx.AsyncClient, world: World, assignment_id: str
) -> list[dict[str, Any]]:
    response = await http.get(
        f"/v1/assignments/{assignment_id}/occurrences", headers=world.headers("system_a")
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def waiting(http: httpx.AsyncClient, world: World, assignment_id: str) -> dict[str, Any]:
    """The assignment as it reads while it waits for a booking."""
    found = await read(http, world, assignment_id)
    assert found["status"] == "active"
    assert found["schedule"]["due_at"] is None
    assert await occurrences_of(http, world, assignment_id) == []
    return found


async def missed_events(world: World) -> list[Event]:
    async with world.app.state.database.sessionmaker() as session:
        found = await session.scalars(select(Event).where(Event.type == "occurrence.missed"))
        return list(found.all())


async def test_a_cleared_session_sends_the_homework_back_to_waiting(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await booked_client(client, world)
    created = await assigned(client, world, client_id, BEFORE_SESSION, reminders=AN_HOUR_BEFORE)
    assert [o["due_at"] for o in created["occurrences"]] == [BOOKED]
    assert await pending_reminders(client, world, client_id) == ["2026-11-26T14:00:00Z"]

    await book(client, world, client_id, None)

    await waiting(client, world, created["id"])
    assert await pending_reminders(client, world, client_id) == []
    # Long after the old session time, the worker neither misses nor ends it.
    counts = await run_worker(world, "2026-12-20T00:00:00Z")
    assert counts["mark_missed"] == counts["finish_assignments"] == 0
    await waiting(client, world, created["id"])
    assert await missed_events(world) == []


async def test_the_next_booking_brings_the_homework_back_with_its_reminders(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await booked_client(client, world)
    created = await assigned(client, world, client_id, BEFORE_SESSION, reminders=AN_HOUR_BEFORE)
    await book(client, world, client_id, None)
    freeze(world, "2026-11-28T09:00:00Z")

    await book(client, world, client_id, "2026-12-03T16:30:00Z")

    found = await read(client, world, created["id"])
    assert found["schedule"]["due_at"] == "2026-12-03T16:30:00Z"
    (occurrence,) = await occurrences_of(client, world, created["id"])
    assert (occurrence["due_at"], occurrence["status"]) == ("2026-12-03T16:30:00Z", "open")
    assert occurrence["local_due"] == "2026-12-03T11:30"
    assert await pending_reminders(client, world, client_id) == ["2026-12-03T15:30:00Z"]


async def test_a_session_moved_into_the_past_is_treated_as_cleared(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await booked_client(client, world)
    created = await assigned(client, world, client_id, BEFORE_SESSION, reminders=AN_HOUR_BEFORE)

    await book(client, world, client_id, "2026-11-21T15:00:00Z")  # yesterday

    await waiting(client, world, created["id"])
    assert await pending_reminders(client, world, client_id) == []
    counts = await run_worker(world, "2026-11-22T09:01:00Z")
    assert counts["mark_missed"] == 0
    assert await missed_events(world) == []


async def test_done_homework_stays_done_when_the_session_moves_into_the_past(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await booked_client(client, world)
    created = await assigned(client, world, client_id, BEFORE_SESSION)
    (occurrence,) = created["occurrences"]
    done = await complete(
        client, world, occurrence["id"], role=client_id, status="done", answers={"mood": 6}
    )
    assert done.status_code == 201, done.text

    await book(client, world, client_id, "2026-11-21T15:00:00Z")

    found = await read(client, world, created["id"])
    assert found["status"] == "completed"
    kept = await occurrences_of(client, world, created["id"])
    assert [(o["id"], o["status"]) for o in kept] == [(occurrence["id"], "completed")]


async def test_a_session_in_the_past_is_no_booking_to_assign_against(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(
        client, world, "America/New_York", next_session_at="2026-11-20T15:00:00Z"
    )
    refused = await assign(client, world, client_id, BEFORE_SESSION)
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["pointer"] == "/schedule/type"
    assert "no upcoming session" in error["message"]
