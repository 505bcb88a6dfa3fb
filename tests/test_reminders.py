"""Reminders through the API and the worker: exact UTC instants in the client's time zone,
quiet hours, preferences, completion, firing, snoozes and dismissals.

The clock is frozen per test; the worker runs with an explicit `now`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

import httpx
from sqlalchemy import select

from app.core.scopes import Context
from app.models import Event
from app.services.reminders import firing
from app.services.webhooks.payloads import payload
from app.worker.loop import run_once
from tests.homework_helpers import assign, complete, freeze, new_client
from tests.world import World

Row = tuple[str, str, str, str | None]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def listed(http: httpx.AsyncClient, world: World, **params: str) -> list[dict[str, Any]]:
    response = await http.get("/v1/reminders", params=params, headers=world.headers("system_a"))
    assert response.status_code == 200, response.text
    return sorted(response.json()["data"], key=lambda r: (r["due_at"], r["id"]))


async def reminder_rows(http: httpx.AsyncClient, world: World, **params: str) -> list[Row]:
    return [
        (r["due_at"], r["local_due"], r["state"], r["reason"])
        for r in await listed(http, world, **params)
    ]


async def client_with_token(
    http: httpx.AsyncClient, world: World, time_zone: str, **extra: Any
) -> str:
    """A new client of tenant A; its token is `world.headers(client_id)`."""
    client_id = await new_client(http, world, time_zone, **extra)
    world.tokens[client_id] = world.token_for(world.a, Context.client, client_id)
    return client_id


async def assigned(
    http: httpx.AsyncClient, world: World, client_id: str, schedule: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    response = await assign(http, world, client_id, schedule, **extra)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def occurrences(http: httpx.AsyncClient, world: World, assignment_id: str) -> list[str]:
    response = await http.get(
        f"/v1/assignments/{assignment_id}/occurrences", headers=world.headers("system_a")
    )
    assert response.status_code == 200, response.text
    return [o["id"] for o in sorted(response.json(), key=lambda o: o["ordinal"])]


async def due_events(world: World) -> list[Event]:
    async with world.app.state.database.sessionmaker() as session:
        found = await session.scalars(
            select(Event).where(Event.type == "reminder.due").order_by(Event.id)
        )
        return list(found.all())


async def fire(world: World, now: str, batch: int = 50) -> int:
    counts = await run_once(world.app.state.database, at(now), batch)
    return counts["fire_reminders"]


def daily(count: int, start: str, hour: int = 20) -> dict[str, Any]:
    return {
        "type": "recurring",
        "rrule": f"FREQ=DAILY;COUNT={count};BYHOUR={hour};BYMINUTE=0",
        "start": start,
    }


def once(due_at: str) -> dict[str, str]:
    return {"type": "once", "due_at": due_at}


# 1. Local time across DST changes.


class DstCase(NamedTuple):
    zone: str
    now: str
    start: str
    hour: int  # BYHOUR of the daily rule
    policy: dict[str, Any] | None  # the assignment's own, or the template's default
    expected: list[tuple[str, str]]  # (due_at, local_due) per day
    label: str


DST_CASES = [
    DstCase(
        "America/New_York",
        "2026-03-05T12:00:00Z",
        "2026-03-06T20:00",
        20,
        None,  # the mood log's default: 20:00 local
        [
            ("2026-03-07T01:00:00Z", "2026-03-06T20:00"),
            ("2026-03-08T01:00:00Z", "2026-03-07T20:00"),
            ("2026-03-09T00:00:00Z", "2026-03-08T20:00"),
            ("2026-03-10T00:00:00Z", "2026-03-09T20:00"),
        ],
        label="new-york-spring",
    ),
    DstCase(
        "America/New_York",
        "2026-10-30T12:00:00Z",
        "2026-10-30T20:00",
        20,
        None,
        [
            ("2026-10-31T00:00:00Z", "2026-10-30T20:00"),
            ("2026-11-01T00:00:00Z", "2026-10-31T20:00"),
            ("2026-11-02T01:00:00Z", "2026-11-01T20:00"),
            ("2026-11-03T01:00:00Z", "2026-11-02T20:00"),
        ],
        label="new-york-autumn",
    ),
    DstCase(
        # Due at 21:00, reminded at 20:00 by the assignment's own policy.
        "Europe/Berlin",
        "2026-03-27T12:00:00Z",
        "2026-03-27T21:00",
        21,
        {"local_times": ["20:00"]},
        [
            ("2026-03-27T19:00:00Z", "2026-03-27T20:00"),
            ("2026-03-28T19:00:00Z", "2026-03-28T20:00"),
            ("2026-03-29T18:00:00Z", "2026-03-29T20:00"),
            ("2026-03-30T18:00:00Z", "2026-03-30T20:00"),
        ],
        label="berlin-spring",
    ),
    DstCase(
        "Europe/Berlin",
        "2026-10-23T12:00:00Z",
        "2026-10-23T21:00",
        21,
        {"local_times": ["20:00"]},
        [
            ("2026-10-23T18:00:00Z", "2026-10-23T20:00"),
            ("2026-10-24T18:00:00Z", "2026-10-24T20:00"),
            ("2026-10-25T19:00:00Z", "2026-10-25T20:00"),
            ("2026-10-26T19:00:00Z", "2026-10-26T20:00"),
        ],
        label="berlin-autumn",
    ),
    DstCase(
        # +11:00 until 5 April, then +10:30.
        "Australia/Lord_Howe",
        "2026-04-03T00:00:00Z",
        "2026-04-03T20:00",
        20,
        None,
        [
            ("2026-04-03T09:00:00Z", "2026-04-03T20:00"),
            ("2026-04-04T09:00:00Z", "2026-04-04T20:00"),
            ("2026-04-05T09:30:00Z", "2026-04-05T20:00"),
            ("2026-04-06T09:30:00Z", "2026-04-06T20:00"),
        ],
        label="lord-howe-autumn",
    ),
    DstCase(
        "Australia/Lord_Howe",
        "2026-10-02T00:00:00Z",
        "2026-10-02T21:00",
        21,
        {"local_times": ["20:00"]},
        [
            ("2026-10-02T09:30:00Z", "2026-10-02T20:00"),
            ("2026-10-03T09:30:00Z", "2026-10-03T20:00"),
            ("2026-10-04T09:00:00Z", "2026-10-04T20:00"),
            ("2026-10-05T09:00:00Z", "2026-10-05T20:00"),
        ],
        label="lord-howe-spring",
    ),
]


async def test_a_daily_20_00_reminder_stays_at_20_00_local_across_dst(
    client: httpx.AsyncClient, world: World
) -> None:
    # One test for all six: a fresh world each would cost more than the cases themselves.
    for zone, now, start, hour, policy, expected, label in DST_CASES:
        freeze(world, now)
        client_id = await new_client(client, world, zone)
        extra = {"reminders": policy} if policy else {}
        await assigned(client, world, client_id, daily(4, start, hour), **extra)

        found = await listed(client, world, client_id=client_id)
        assert [(r["due_at"], r["local_due"]) for r in found] == expected, label
        assert {(r["state"], r["reason"], r["time_zone"]) for r in found} == {
            ("scheduled", None, zone)
        }, label
        assert len({r["occurrence_id"] for r in found}) == 4, label  # one a day


# 2. Quiet hours.


async def test_quiet_hours_across_midnight_move_a_reminder_to_their_end(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await new_client(
        client, world, "America/New_York", quiet_hours={"start": "22:00", "end": "07:00"}
    )
    # Due 23:00 EST (04:00Z); the window closes 12 hours later, at 11:00 EST (16:00Z).
    late = await assigned(
        client, world, client_id, once("2026-11-22T23:00"), reminders={"local_times": ["23:00"]}
    )
    # The same, but the window closes at 05:00 EST, before the quiet hours end.
    short = await assigned(
        client,
        world,
        client_id,
        once("2026-11-22T23:00"),
        reminders={"local_times": ["23:00"]},
        window={"grace_minutes": 360},
    )
    assert await reminder_rows(client, world, occurrence_id=late["occurrences"][0]["id"]) == [
        ("2026-11-23T12:00:00Z", "2026-11-23T07:00", "scheduled", "quiet_hours")
    ]
    assert await reminder_rows(client, world, occurrence_id=short["occurrences"][0]["id"]) == [
        ("2026-11-23T04:00:00Z", "2026-11-22T23:00", "skipped", "quiet_hours")
    ]

    # Nothing fires at 23:00 EST; the moved one fires at 07:00 EST.
    assert await fire(world, "2026-11-23T04:00:00Z") == 0
    assert await due_events(world) == []
    assert await fire(world, "2026-11-23T12:00:00Z") == 1
    [event] = await due_events(world)
    assert event.subject["occurrence_id"] == late["occurrences"][0]["id"]
    assert event.subject["local_due_at"] == "2026-11-23T07:00"


async def test_quiet_hours_within_one_day(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await new_client(
        client, world, "America/New_York", quiet_hours={"start": "13:00", "end": "14:00"}
    )
    body = await assigned(
        client,
        world,
        client_id,
        once("2026-11-22T17:00"),
        reminders={"local_times": ["12:30", "13:30", "15:00"]},
    )
    assert await reminder_rows(client, world, occurrence_id=body["occurrences"][0]["id"]) == [
        ("2026-11-22T17:30:00Z", "2026-11-22T12:30", "scheduled", None),
        ("2026-11-22T19:00:00Z", "2026-11-22T14:00", "scheduled", "quiet_hours"),
        ("2026-11-22T20:00:00Z", "2026-11-22T15:00", "scheduled", None),
    ]


# 3. The client moves.


async def test_a_client_who_moves_is_reminded_at_the_new_local_time(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await client_with_token(client, world, "Europe/London")
    series = await assigned(client, world, client_id, daily(3, "2026-11-22T20:00"))
    # A one-off due at a fixed instant (noon UTC on the 24th), reminded at 09:00 local.
    one_off = await assigned(
        client,
        world,
        client_id,
        once("2026-11-24T12:00:00Z"),
        reminders={"local_times": ["09:00"]},
    )
    assert await fire(world, "2026-11-22T20:00:00Z") == 1  # the first day's, in London

    freeze(world, "2026-11-22T21:00:00Z")
    moved = await client.patch(
        f"/v1/clients/{client_id}",
        json={"time_zone": "America/New_York"},
        headers=world.headers(client_id),
    )
    assert moved.status_code == 200, moved.text

    first, second, third = await occurrences(client, world, series["id"])
    # The one already sent stays as it was, and the still-open first occurrence gets no
    # second reminder at 20:00 New York time for the same slot.
    assert [
        (r["due_at"], r["local_due"], r["time_zone"], r["state"])
        for r in await listed(client, world, occurrence_id=first)
    ] == [("2026-11-22T20:00:00Z", "2026-11-22T20:00", "Europe/London", "sent")]
    # Those still ahead are at 20:00 in New York (01:00Z the next day).
    for occurrence_id, due, local in (
        (second, "2026-11-24T01:00:00Z", "2026-11-23T20:00"),
        (third, "2026-11-25T01:00:00Z", "2026-11-24T20:00"),
    ):
        assert [
            (r["due_at"], r["local_due"], r["time_zone"], r["state"])
            for r in await listed(client, world, occurrence_id=occurrence_id)
        ] == [(due, local, "America/New_York", "scheduled")]
    # The one-off does not move (a fixed instant), its reminder does: 09:00 EST is 14:00Z.
    assert await reminder_rows(client, world, occurrence_id=one_off["occurrences"][0]["id"]) == [
        ("2026-11-24T14:00:00Z", "2026-11-24T09:00", "scheduled", None)
    ]


# 4. What stops reminders.


async def test_completing_an_occurrence_cancels_its_pending_reminders(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    body = await assigned(
        client,
        world,
        world.a.clients["A1"],
        once("2026-11-22T20:00"),
        reminders={"local_times": ["18:00", "20:00"]},
    )
    occurrence_id = body["occurrences"][0]["id"]
    done = await complete(client, world, occurrence_id, status="done", answers={"mood": 7})
    assert done.status_code == 201, done.text
    assert await reminder_rows(client, world, occurrence_id=occurrence_id) == [
        ("2026-11-22T18:00:00Z", "2026-11-22T18:00", "cancelled", "resolved"),
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "cancelled", "resolved"),
    ]
    assert await fire(world, "2026-11-22T20:00:00Z") == 0
    assert await due_events(world) == []


async def test_a_reminder_claimed_before_the_completion_is_not_sent(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    body = await assigned(client, world, world.a.clients["A1"], once("2026-11-22T20:00"))
    occurrence_id = body["occurrences"][0]["id"]
    database = world.app.state.database
    async with database.sessionmaker() as session, session.begin():
        claimed = await firing.claim_due(session, at("2026-11-22T20:00:00Z"), 10, "w1")
    assert len(claimed) == 1
    # The client completes while the worker holds the lease.
    freeze(world, "2026-11-22T20:00:00Z")
    done = await complete(client, world, occurrence_id, status="done", answers={"mood": 7})
    assert done.status_code == 201, done.text
    async with database.sessionmaker() as session, session.begin():
        await firing.fire_claimed(session, claimed, "w1", at("2026-11-22T20:00:00Z"))
    assert await reminder_rows(client, world, occurrence_id=occurrence_id) == [
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "cancelled", "resolved")
    ]
    assert await due_events(world) == []


async def test_a_reminder_of_an_occurrence_missed_while_no_worker_ran_is_not_sent(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    body = await assigned(client, world, world.a.clients["A1"], once("2026-11-22T20:00"))
    # The window closed at 08:00Z on the 23rd; the worker comes back at 09:00Z.
    assert await fire(world, "2026-11-23T09:00:00Z") == 1
    assert await reminder_rows(client, world, occurrence_id=body["occurrences"][0]["id"]) == [
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "cancelled", "resolved")
    ]
    assert await due_events(world) == []


async def test_cancelling_the_assignment_cancels_its_reminders(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    body = await assigned(client, world, world.a.clients["A1"], daily(3, "2026-11-22T20:00"))
    cancelled = await client.post(
        f"/v1/assignments/{body['id']}/cancel", headers=world.headers("clinician_a1")
    )
    assert cancelled.status_code == 200, cancelled.text
    assert await reminder_rows(client, world, client_id=world.a.clients["A1"]) == [
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "cancelled", "cancelled"),
        ("2026-11-23T20:00:00Z", "2026-11-23T20:00", "cancelled", "cancelled"),
        ("2026-11-24T20:00:00Z", "2026-11-24T20:00", "cancelled", "cancelled"),
    ]
    assert await fire(world, "2026-11-22T20:00:00Z") == 0


async def test_a_muted_clients_reminders_are_skipped_and_come_back_when_unmuted(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await client_with_token(client, world, "Europe/Berlin")
    await assigned(client, world, client_id, daily(3, "2026-11-22T20:00"))
    assert await fire(world, "2026-11-22T19:00:00Z") == 1  # 20:00 in Berlin

    freeze(world, "2026-11-23T09:00:00Z")
    mute = await client.patch(
        f"/v1/clients/{client_id}", json={"reminders_muted": True}, headers=world.headers(client_id)
    )
    assert mute.status_code == 200, mute.text
    assert await reminder_rows(client, world, client_id=client_id) == [
        ("2026-11-22T19:00:00Z", "2026-11-22T20:00", "sent", None),
        ("2026-11-23T19:00:00Z", "2026-11-23T20:00", "skipped", "muted"),
        ("2026-11-24T19:00:00Z", "2026-11-24T20:00", "skipped", "muted"),
    ]
    assert await fire(world, "2026-11-23T19:00:00Z") == 0
    assert len(await due_events(world)) == 1

    freeze(world, "2026-11-23T20:00:00Z")
    unmute = await client.patch(
        f"/v1/clients/{client_id}",
        json={"reminders_muted": False},
        headers=world.headers(client_id),
    )
    assert unmute.status_code == 200, unmute.text
    # The one that passed while muted stays skipped; the one still ahead is back.
    assert await reminder_rows(client, world, client_id=client_id) == [
        ("2026-11-22T19:00:00Z", "2026-11-22T20:00", "sent", None),
        ("2026-11-23T19:00:00Z", "2026-11-23T20:00", "skipped", "muted"),
        ("2026-11-24T19:00:00Z", "2026-11-24T20:00", "scheduled", None),
    ]
    assert await fire(world, "2026-11-24T19:00:00Z") == 1
    assert len(await due_events(world)) == 2


async def test_a_policy_that_names_no_times_keeps_the_templates_times(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    body = await assigned(
        client,
        world,
        world.a.clients["A1"],
        once("2026-11-22T21:00"),
        reminders={"only_if_not_done": False, "max_per_day": 1},
    )
    assert await reminder_rows(client, world, occurrence_id=body["occurrences"][0]["id"]) == [
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "scheduled", None)  # the mood log's 20:00
    ]
    off = await assigned(
        client,
        world,
        world.a.clients["A1"],
        once("2026-11-22T21:00"),
        reminders={"enabled": False},
    )
    assert await listed(client, world, occurrence_id=off["occurrences"][0]["id"]) == []


async def test_the_assignments_max_per_day(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T06:00:00Z")
    client_id = world.a.clients["A1"]  # Europe/London
    body = await assigned(
        client,
        world,
        client_id,
        once("2026-11-22T20:00"),
        reminders={"local_times": ["08:00", "12:00", "18:00"], "max_per_day": 2},
    )
    assert await reminder_rows(client, world, occurrence_id=body["occurrences"][0]["id"]) == [
        ("2026-11-22T08:00:00Z", "2026-11-22T08:00", "scheduled", None),
        ("2026-11-22T12:00:00Z", "2026-11-22T12:00", "scheduled", None),
        ("2026-11-22T18:00:00Z", "2026-11-22T18:00", "skipped", "assignment_daily_cap"),
    ]


async def test_the_assignments_max_per_day_across_occurrences_of_one_day(
    client: httpx.AsyncClient, world: World
) -> None:
    # Due at 09:00 and 21:00 each day, reminded an hour before each, at most once a day.
    freeze(world, "2026-11-22T06:00:00Z")
    client_id = world.a.clients["A1"]  # Europe/London
    schedule = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=2;BYHOUR=9,21;BYMINUTE=0",
        "start": "2026-11-22T09:00",
    }
    await assigned(
        client, world, client_id, schedule, reminders={"lead_minutes": [60], "max_per_day": 1}
    )
    assert await fire(world, "2026-11-22T08:00:00Z") == 1
    assert await fire(world, "2026-11-22T20:00:00Z") == 1
    assert await reminder_rows(client, world, client_id=client_id) == [
        ("2026-11-22T08:00:00Z", "2026-11-22T08:00", "sent", None),
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "skipped", "assignment_daily_cap"),
    ]
    assert len(await due_events(world)) == 1


async def test_the_clients_max_reminders_per_day_is_enforced_when_firing(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T06:00:00Z")
    client_id = await client_with_token(client, world, "Europe/London", max_reminders_per_day=2)
    for local_times in (["09:00", "19:00"], ["19:00"], ["19:30"], ["10:00"]):
        await assigned(
            client,
            world,
            client_id,
            once("2026-11-22T22:00"),
            reminders={"local_times": local_times},
        )
    # 09:00: the first of the day. Its occurrence is then dismissed: it was still sent.
    assert await fire(world, "2026-11-22T09:00:00Z") == 1
    [morning] = [r for r in await listed(client, world, client_id=client_id) if r["sent_at"]]
    dismissed = await client.post(
        f"/v1/reminders/{morning['id']}/dismiss", headers=world.headers(client_id)
    )
    assert dismissed.status_code == 200, dismissed.text
    # One batch at 19:30 holds the 10:00 (late), the other 19:00 and the 19:30: the earliest
    # due is sent (the second of the day), the rest are over the cap.
    assert await fire(world, "2026-11-22T19:30:00Z") == 3
    assert sorted(await reminder_rows(client, world, client_id=client_id)) == [
        ("2026-11-22T09:00:00Z", "2026-11-22T09:00", "dismissed", "dismissed"),
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00", "sent", None),
        ("2026-11-22T19:00:00Z", "2026-11-22T19:00", "dismissed", "dismissed"),  # with 09:00
        ("2026-11-22T19:00:00Z", "2026-11-22T19:00", "skipped", "daily_cap"),
        ("2026-11-22T19:30:00Z", "2026-11-22T19:30", "skipped", "daily_cap"),
    ]
    assert len(await due_events(world)) == 2


# 5. Firing.


async def test_firing_sends_once_with_a_thin_reminder_due_event(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = world.a.clients["A1"]
    body = await assigned(
        client,
        world,
        client_id,
        once("2026-11-22T20:00"),
        title="Private title about my panic",
        instructions="Private instructions",
        purpose="Private purpose",
    )
    occurrence_id = body["occurrences"][0]["id"]
    assert await fire(world, "2026-11-22T19:59:59Z") == 0
    assert await fire(world, "2026-11-22T20:00:00Z") == 1
    [reminder] = await listed(client, world, occurrence_id=occurrence_id)
    assert (reminder["state"], reminder["sent_at"]) == ("sent", "2026-11-22T20:00:00Z")

    [event] = await due_events(world)
    assert event.client_id == client_id
    assert event.subject == {
        "reminder_id": reminder["id"],
        "occurrence_id": occurrence_id,
        "assignment_id": body["id"],
        "template_kind": "mood_log",
        "local_due_at": "2026-11-22T20:00",
        "time_zone": "Europe/London",
    }
    # What the webhook receiver gets: those ids and the client's, and nothing a person wrote.
    delivered = payload(event)
    assert delivered["type"] == "reminder.due"
    assert delivered["data"] == {**event.subject, "client_id": client_id}
    text = json.dumps(delivered)
    for private in ("Private", "Client A", "A-clt-1", "Mood log"):
        assert private not in text

    # A later round does not send it again.
    assert await fire(world, "2026-11-22T20:01:00Z") == 0
    assert len(await due_events(world)) == 1


# 6. Snooze and dismiss.


async def _sent_reminder(http: httpx.AsyncClient, world: World, client_id: str) -> dict[str, Any]:
    """A 20:00 London reminder, sent; the window closes at 08:00Z the next day."""
    freeze(world, "2026-11-22T12:00:00Z")
    await assigned(http, world, client_id, once("2026-11-22T20:00"))
    assert await fire(world, "2026-11-22T20:00:00Z") == 1
    [reminder] = await listed(http, world, client_id=client_id)
    freeze(world, "2026-11-22T20:05:00Z")
    return reminder


async def test_a_snoozed_reminder_fires_again_later(
    client: httpx.AsyncClient, world: World
) -> None:
    reminder = await _sent_reminder(client, world, world.a.clients["A1"])
    snoozed = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"minutes": 30},
        headers=world.headers("client_a1"),
    )
    assert snoozed.status_code == 200, snoozed.text
    body = snoozed.json()
    assert (body["state"], body["due_at"], body["local_due"]) == (
        "snoozed",
        "2026-11-22T20:35:00Z",
        "2026-11-22T20:35",
    )
    assert await fire(world, "2026-11-22T20:34:59Z") == 0
    assert await fire(world, "2026-11-22T20:35:00Z") == 1
    [again] = await listed(client, world, client_id=world.a.clients["A1"])
    assert (again["state"], again["sent_at"]) == ("sent", "2026-11-22T20:35:00Z")
    events = await due_events(world)
    assert [e.subject["reminder_id"] for e in events] == [reminder["id"]] * 2
    assert events[1].subject["local_due_at"] == "2026-11-22T20:35"

    until = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"until": "2026-11-22T23:00:00+01:00"},
        headers=world.headers("client_a1"),
    )
    assert until.status_code == 200, until.text
    assert (until.json()["due_at"], until.json()["local_due"]) == (
        "2026-11-22T22:00:00Z",
        "2026-11-22T22:00",
    )


SNOOZE_REFUSED: list[tuple[dict[str, Any], str | None]] = [
    ({"minutes": 0}, "/minutes"),
    ({"minutes": 1441}, "/minutes"),
    ({"minutes": 30, "until": "2026-11-22T21:00:00Z"}, None),  # both
    ({}, None),  # neither
    ({"until": "2026-11-22T20:05:30Z"}, "/until"),  # 30 seconds: under a minute
    ({"until": "2026-11-22T20:00:00Z"}, "/until"),  # in the past
    ({"until": "2026-11-23T20:06:00Z"}, "/until"),  # over 24 hours
    ({"minutes": 720}, "/minutes"),  # 08:05Z: after the window closes at 08:00Z
    ({"until": "2026-11-23T08:00:00Z"}, "/until"),  # exactly at the close
]


async def test_snooze_bounds(client: httpx.AsyncClient, world: World) -> None:
    reminder = await _sent_reminder(client, world, world.a.clients["A1"])
    for body, pointer in SNOOZE_REFUSED:
        response = await client.post(
            f"/v1/reminders/{reminder['id']}/snooze", json=body, headers=world.headers("client_a1")
        )
        assert response.status_code == 422, (body, response.text)
        if pointer is not None:
            assert pointer in {e["pointer"] for e in response.json()["errors"]}, body
    [unchanged] = await listed(client, world, client_id=world.a.clients["A1"])
    assert (unchanged["state"], unchanged["due_at"]) == ("sent", "2026-11-22T20:00:00Z")
    # The longest allowed snooze that stays inside the window is accepted.
    accepted = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"until": "2026-11-23T07:59:00Z"},
        headers=world.headers("client_a1"),
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["due_at"] == "2026-11-23T07:59:00Z"


async def test_a_snooze_into_quiet_hours_moves_to_their_end(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await client_with_token(
        client, world, "Europe/London", quiet_hours={"start": "22:00", "end": "07:00"}
    )
    # Due 21:30, so both windows are open until after 07:00: 09:30Z, and 06:30Z.
    open_late = await assigned(client, world, client_id, once("2026-11-22T21:30"))
    closes_early = await assigned(
        client, world, client_id, once("2026-11-22T21:30"), window={"grace_minutes": 540}
    )
    assert await fire(world, "2026-11-22T20:00:00Z") == 2  # the mood log's 20:00
    first, second = [
        (await listed(client, world, occurrence_id=body["occurrences"][0]["id"]))[0]["id"]
        for body in (open_late, closes_early)
    ]
    freeze(world, "2026-11-22T21:50:00Z")
    snoozed = await client.post(
        f"/v1/reminders/{first}/snooze", json={"minutes": 30}, headers=world.headers(client_id)
    )
    assert snoozed.status_code == 200, snoozed.text
    assert (snoozed.json()["state"], snoozed.json()["due_at"], snoozed.json()["local_due"]) == (
        "snoozed",
        "2026-11-23T07:00:00Z",
        "2026-11-23T07:00",
    )
    # The quiet hours end after the other window has closed: refused.
    refused = await client.post(
        f"/v1/reminders/{second}/snooze", json={"minutes": 30}, headers=world.headers(client_id)
    )
    assert refused.status_code == 422, refused.text
    assert [e["code"] for e in refused.json()["errors"]] == ["after_window"]

    assert await fire(world, "2026-11-23T06:59:00Z") == 0
    assert await fire(world, "2026-11-23T07:00:00Z") == 1


async def test_dismiss_ends_every_pending_reminder_of_the_occurrence(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await client_with_token(client, world, "Europe/London")
    body = await assigned(
        client,
        world,
        client_id,
        once("2026-11-22T20:00"),
        reminders={"local_times": ["18:00", "19:00", "20:00"]},
    )
    other = await assigned(client, world, client_id, once("2026-11-22T20:00"))
    occurrence_id = body["occurrences"][0]["id"]
    assert await fire(world, "2026-11-22T18:00:00Z") == 1
    first = (await listed(client, world, occurrence_id=occurrence_id))[0]
    freeze(world, "2026-11-22T18:10:00Z")
    dismissed = await client.post(
        f"/v1/reminders/{first['id']}/dismiss", headers=world.headers(client_id)
    )
    assert dismissed.status_code == 200, dismissed.text
    assert (dismissed.json()["state"], dismissed.json()["sent_at"]) == (
        "dismissed",
        "2026-11-22T18:00:00Z",
    )
    expected = [
        ("2026-11-22T18:00:00Z", "2026-11-22T18:00", "dismissed", "dismissed"),
        ("2026-11-22T19:00:00Z", "2026-11-22T19:00", "dismissed", "dismissed"),
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "dismissed", "dismissed"),
    ]
    assert await reminder_rows(client, world, occurrence_id=occurrence_id) == expected
    # A change of preferences replans what is ahead, but not what the client dismissed.
    quiet = await client.patch(
        f"/v1/clients/{client_id}",
        json={"quiet_hours": {"start": "23:00", "end": "06:00"}},
        headers=world.headers(client_id),
    )
    assert quiet.status_code == 200, quiet.text
    assert await reminder_rows(client, world, occurrence_id=occurrence_id) == expected
    # The other assignment's reminder is untouched and is the only one to fire.
    assert await fire(world, "2026-11-22T20:00:00Z") == 1
    [event] = (await due_events(world))[1:]
    assert event.subject["occurrence_id"] == other["occurrences"][0]["id"]


async def test_a_snoozed_reminder_is_not_planned_twice(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await client_with_token(client, world, "Europe/London")
    body = await assigned(client, world, client_id, once("2026-11-22T21:00"))
    [reminder] = await listed(client, world, client_id=client_id)  # 20:00, not yet sent
    freeze(world, "2026-11-22T19:00:00Z")
    snoozed = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"minutes": 90},
        headers=world.headers(client_id),
    )
    assert snoozed.status_code == 200, snoozed.text
    # A change of preferences replans: the snoozed one stands for the 20:00 slot.
    changed = await client.patch(
        f"/v1/clients/{client_id}",
        json={"quiet_hours": {"start": "23:00", "end": "06:00"}},
        headers=world.headers(client_id),
    )
    assert changed.status_code == 200, changed.text
    assert await reminder_rows(client, world, occurrence_id=body["occurrences"][0]["id"]) == [
        ("2026-11-22T20:30:00Z", "2026-11-22T20:30", "snoozed", None)
    ]


async def test_only_the_client_may_snooze_or_dismiss_its_reminders(
    client: httpx.AsyncClient, world: World
) -> None:
    reminder = await _sent_reminder(client, world, world.a.clients["A1"])
    path = f"/v1/reminders/{reminder['id']}"
    for role, status in (("client_a2", 404), ("system_b", 404), ("clinician_a1", 403)):
        snooze = await client.post(
            f"{path}/snooze", json={"minutes": 30}, headers=world.headers(role)
        )
        dismiss = await client.post(f"{path}/dismiss", headers=world.headers(role))
        assert (snooze.status_code, dismiss.status_code) == (status, status), role
    assert (await listed(client, world, client_id=world.a.clients["A1"]))[0]["state"] == "sent"

    # A clinician on the care team may read them.
    seen = await client.get(
        "/v1/reminders",
        params={"client_id": world.a.clients["A1"]},
        headers=world.headers("clinician_a1"),
    )
    assert [r["id"] for r in seen.json()["data"]] == [reminder["id"]]
    hidden = await client.get("/v1/reminders", headers=world.headers("client_a2"))
    assert hidden.json()["data"] == []


async def test_a_cancelled_reminder_cannot_be_snoozed(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    body = await assigned(client, world, world.a.clients["A1"], once("2026-11-22T20:00"))
    occurrence_id = body["occurrences"][0]["id"]
    assert (
        await complete(client, world, occurrence_id, status="done", answers={"mood": 5})
    ).is_success
    [reminder] = await listed(client, world, occurrence_id=occurrence_id)
    response = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"minutes": 30},
        headers=world.headers("client_a1"),
    )
    assert response.status_code == 409, response.text
