"""`POST /v1/assignments/preview`: what an assignment would give the client, nothing saved
(issue 17).

The preview is held to two oracles: exact instants computed here from `zoneinfo`, and the
assignment that `POST /v1/assignments` then creates from the same body at the same moment
(its occurrences and the reminders it keeps must be what the preview showed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from app.models import Assignment, AuditEvent, Event, Occurrence, Reminder
from tests.homework_helpers import count_queries, freeze, new_client
from tests.world import World

NEW_YORK = ZoneInfo("America/New_York")
EVENINGS = {
    "type": "recurring",
    "rrule": "FREQ=DAILY;BYHOUR=20;BYMINUTE=0",
    "start": "2026-11-23T20:00",
}
EVERY_HALF_HOUR = "FREQ=DAILY;BYHOUR=" + ",".join(map(str, range(24))) + ";BYMINUTE=0,30"


def series(rrule: str, start: str) -> dict[str, str]:
    return {"type": "recurring", "rrule": rrule, "start": start}


def wall(text: str, zone: ZoneInfo = NEW_YORK) -> str:
    """The UTC instant, as the API writes it, when the clocks in `zone` show `text`."""
    instant = datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def body_for(client_id: str, schedule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "template_id": "tpl_builtin_mood_log",
        "schedule": schedule,
        **extra,
    }


async def preview(
    http: httpx.AsyncClient,
    world: World,
    body: dict[str, Any],
    role: str = "clinician_a1",
    **params: Any,
) -> httpx.Response:
    return await http.post(
        "/v1/assignments/preview", json=body, params=params, headers=world.headers(role)
    )


async def previewed(
    http: httpx.AsyncClient, world: World, body: dict[str, Any], **params: Any
) -> dict[str, Any]:
    response = await preview(http, world, body, **params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def evening_client(http: httpx.AsyncClient, world: World, **extra: Any) -> str:
    """A client in New York; it is Monday 23 November 2026, 10:30 there."""
    freeze(world, "2026-11-23T15:30:00Z")
    return await new_client(http, world, "America/New_York", **extra)


async def test_every_evening_at_20_reminded_at_19(client: httpx.AsyncClient, world: World) -> None:
    client_id = await evening_client(client, world)
    body = body_for(client_id, EVENINGS, reminders={"local_times": ["19:00"]})
    shown = await previewed(client, world, body, days=3)
    assert (shown["time_zone"], shown["as_of"], shown["until"]) == (
        "America/New_York", "2026-11-23T15:30:00Z", "2026-11-26T15:30:00Z",
    )  # fmt: skip
    # Each opens 12 hours before (the first when assigned) and closes 12 hours after.
    local = [
        (0, "open", "2026-11-23T20:00", "2026-11-23T10:30", "2026-11-24T08:00"),
        (1, "upcoming", "2026-11-24T20:00", "2026-11-24T08:00", "2026-11-25T08:00"),
        (2, "upcoming", "2026-11-25T20:00", "2026-11-25T08:00", "2026-11-26T08:00"),
    ]
    assert [
        (o["ordinal"], o["status"], o["due_at"], o["opens_at"], o["closes_at"])
        for o in shown["occurrences"]
    ] == [(ordinal, status, *map(wall, times)) for ordinal, status, *times in local]
    first = shown["occurrences"][0]
    assert (first["local_due"], first["local_opens"], first["local_closes"]) == (
        "2026-11-23T20:00", "2026-11-23T10:30", "2026-11-24T08:00",
    )  # fmt: skip
    assert [o["reminders"] for o in shown["occurrences"]] == [
        [{"due_at": wall(f"2026-11-{day}T19:00"), "local_due": f"2026-11-{day}T19:00",
          "state": "scheduled", "reason": None, "moved_from_local": None}]
        for day in (23, 24, 25)
    ]  # fmt: skip


async def test_quiet_hours_move_or_skip_what_they_cover(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await evening_client(client, world, quiet_hours={"start": "18:30", "end": "19:45"})
    body = body_for(client_id, EVENINGS, reminders={"local_times": ["19:00"], "lead_minutes": [15]})
    (first, *_) = (await previewed(client, world, body, days=1))["occurrences"]
    assert first["reminders"] == [
        # 19:00 is quiet: moved to 19:45. 19:45 (15 minutes before 20:00) is the same reminder.
        {"due_at": wall("2026-11-23T19:45"), "local_due": "2026-11-23T19:45",
         "state": "scheduled", "reason": "quiet_hours", "moved_from_local": "2026-11-23T19:00"},
    ]  # fmt: skip
    muted = await client.patch(
        f"/v1/clients/{client_id}",
        json={"reminders_muted": True},
        headers=world.headers("system_a"),
    )
    assert muted.status_code == 200, muted.text
    (first, *_) = (await previewed(client, world, body, days=1))["occurrences"]
    assert [(r["state"], r["reason"]) for r in first["reminders"]] == [("skipped", "muted")]


async def test_the_preview_is_what_creating_it_then_makes(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await evening_client(
        client,
        world,
        quiet_hours={"start": "21:00", "end": "07:00"},
        next_session_at="2026-11-27T15:00:00Z",
    )
    bodies = [
        body_for(client_id, EVENINGS, reminders={"local_times": ["19:00", "21:30"]}),
        body_for(client_id, {"type": "once", "due_at": "2026-11-25T09:00"}),
        body_for(client_id, {"type": "before_next_session"}, reminders={"lead_minutes": [90]}),
        # A series started months ago: today's occurrences, numbered from its start.
        body_for(
            client_id,
            series("FREQ=DAILY;BYHOUR=8,20", "2026-06-01T08:00"),
        ),
    ]
    for body in bodies:
        shown = await previewed(client, world, body, days=28)
        created = await client.post(
            "/v1/assignments", json=body, headers=world.headers("clinician_a1")
        )
        assert created.status_code == 201, created.text
        made = created.json()
        assert [
            {k: o[k] for k in ("ordinal", "status", "due_at", "opens_at", "closes_at", "local_due")}
            for o in shown["occurrences"]
        ] == [
            {k: o[k] for k in ("ordinal", "status", "due_at", "opens_at", "closes_at", "local_due")}
            for o in made["occurrences"]
        ]
        assert [
            (r["due_at"], r["local_due"], r["state"], r["reason"])
            for o in shown["occurrences"]
            for r in o["reminders"]
        ] == await reminders_of(world, made["id"])
        assert (shown["schedule"], shown["window"]) == (made["schedule"], made["window"])


async def reminders_of(world: World, assignment_id: str) -> list[tuple[str, str, str, str]]:
    async with world.app.state.database.sessionmaker() as session:
        rows = await session.scalars(
            select(Reminder)
            .where(Reminder.assignment_id == assignment_id)
            .order_by(Reminder.due_at)
        )
        return [(f"{r.due_at:%Y-%m-%dT%H:%M:%SZ}", r.local_due, r.state, r.reason) for r in rows]


async def _row_counts(world: World) -> dict[str, int]:
    async with world.app.state.database.sessionmaker() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in (Assignment, Occurrence, Reminder, Event, AuditEvent)
        }


async def test_nothing_is_saved_but_the_audit_of_the_read(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await evening_client(client, world)
    before = await _row_counts(world)
    await previewed(client, world, body_for(client_id, EVENINGS), days=28)
    after = await _row_counts(world)
    assert after == {**before, "audit_events": before["audit_events"] + 1}
    trail = (
        await client.get(
            "/v1/audit-events", params={"client_id": client_id}, headers=world.headers("system_a")
        )
    ).json()["data"]
    assert (trail[0]["action"], trail[0]["resource_type"]) == ("read", "assignment_preview")


async def test_a_longer_preview_takes_no_more_queries(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = await evening_client(client, world)
    body = body_for(client_id, EVENINGS)
    with count_queries(world) as one_day:
        await previewed(client, world, body, days=1)
    with count_queries(world) as four_weeks:
        await previewed(client, world, body, days=28)
    assert len(four_weeks) == len(one_day)


@pytest.mark.parametrize(
    ("schedule", "pointer"),
    [
        (series("FREQ=MONTHLY", "2026-12-01T09:00"), "/schedule/rrule"),
        (series("FREQ=DAILY;COUNT=3", "2026-01-01T09:00"), "/schedule/rrule"),
        (series(EVERY_HALF_HOUR, "2026-11-23T09:00"), "/schedule/rrule"),
        ({"type": "before_next_session"}, "/schedule/type"),
        ({"type": "someday"}, "/schedule"),
    ],
)  # fmt: skip
async def test_the_preview_refuses_what_creating_refuses(
    client: httpx.AsyncClient, world: World, schedule: dict[str, Any], pointer: str
) -> None:
    client_id = await evening_client(client, world)
    body = body_for(client_id, schedule)
    shown = await preview(client, world, body)
    created = await client.post("/v1/assignments", json=body, headers=world.headers("clinician_a1"))
    assert shown.status_code == created.status_code == 422
    assert shown.json()["errors"] == created.json()["errors"]
    assert any(e["pointer"].startswith(pointer) for e in shown.json()["errors"])


@pytest.mark.parametrize("days", [0, 29, "a week"])
async def test_days_must_be_between_one_and_the_horizon(
    client: httpx.AsyncClient, world: World, days: Any
) -> None:
    client_id = await evening_client(client, world)
    response = await preview(client, world, body_for(client_id, EVENINGS), days=days)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["location"], error["field"]) == ("query", "days")
