"""Reminders never leave their occurrence's window, and muting mutes everything ahead (issue 17).

Exact UTC instants, computed here from `zoneinfo` (PEP 495 folds), not from the service's own
functions: the end of quiet hours is the first one *after* the reminder, also on a fall-back
night whose repeated hour holds it, in a zone with a whole-hour change (New York) and one
with a half-hour change (Lord Howe); the worker refuses a reminder before its window opens;
and a mute turns a snoozed reminder ahead into a muted one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update

from app.models import Occurrence
from tests.homework_helpers import freeze, new_client
from tests.test_reminders import (
    assigned,
    client_with_token,
    due_events,
    fire,
    listed,
    once,
    reminder_rows,
)
from tests.world import World


def wall(zone: str, text: str, *, second_pass: bool = False) -> datetime:
    """The UTC instant the clocks in `zone` show `text`; on a repeated hour, which pass."""
    local = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=int(second_pass))
    return local.astimezone(UTC)


def z(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("zone", "night", "quiet_end", "due", "nominal", "moved"),
    [
        # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00-02:00 happens twice.
        ("America/New_York", "2026-10-31T12:00", "01:30", "2026-11-01T02:15",
         "2026-11-01T01:15", "2026-11-01T01:30"),
        # 2026-04-05: 02:00 LHDT (+11) falls back half an hour to 01:30 LHST (+10:30).
        ("Australia/Lord_Howe", "2026-04-01T00:00", "01:45", "2026-04-05T02:40",
         "2026-04-05T01:40", "2026-04-05T01:45"),
    ],
)  # fmt: skip
async def test_quiet_hours_ending_in_a_repeated_hour_end_after_the_reminder(
    client: httpx.AsyncClient,
    world: World,
    zone: str,
    night: str,
    quiet_end: str,
    due: str,
    nominal: str,
    moved: str,
) -> None:
    """An hour's lead before a due time just after the fall-back puts the reminder on the
    repeated hour's second pass, inside quiet hours that end on that hour: it moves to the
    second pass of their end, after it, never to the first (before it, an hour or half an hour
    early)."""
    freeze(world, f"{night}:00Z")
    client_id = await new_client(
        client, world, zone, quiet_hours={"start": "22:00", "end": quiet_end}
    )
    body = await assigned(client, world, client_id, once(due), reminders={"lead_minutes": [60]})
    due_at = wall(zone, due)
    # The oracle's own check of the case: the nominal time is the second pass, one hour
    # before the due time, and the first pass of the quiet hours' end is before it.
    assert wall(zone, nominal, second_pass=True) == due_at - timedelta(hours=1)
    assert wall(zone, moved) < wall(zone, nominal, second_pass=True)
    expected = wall(zone, moved, second_pass=True)
    assert await reminder_rows(client, world, occurrence_id=body["occurrences"][0]["id"]) == [
        (z(expected), moved, "scheduled", "quiet_hours")
    ]
    # Nothing fires at the first pass of 01:30; it fires at the second.
    assert await fire(world, z(wall(zone, moved))) == 0
    assert await fire(world, z(expected)) == 1


async def test_a_snooze_into_quiet_hours_ending_in_a_repeated_hour_ends_after_it(
    client: httpx.AsyncClient, world: World
) -> None:
    zone = "America/New_York"
    freeze(world, "2026-10-31T12:00:00Z")
    client_id = await client_with_token(
        client, world, zone, quiet_hours={"start": "22:00", "end": "01:30"}
    )
    await assigned(
        client, world, client_id, once("2026-11-01T03:30"), reminders={"lead_minutes": [60]}
    )
    [reminder] = await listed(client, world, client_id=client_id)  # 02:30 EST, an hour before
    # At 01:05 EST (the second pass), snooze for 10 minutes: 01:15 EST is in quiet hours.
    freeze(world, z(wall(zone, "2026-11-01T01:05", second_pass=True)))
    snoozed = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"minutes": 10},
        headers=world.headers(client_id),
    )
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["due_at"] == z(wall(zone, "2026-11-01T01:30", second_pass=True))


async def test_the_worker_sends_no_reminder_before_its_window_opens(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await new_client(client, world, "Europe/London")
    body = await assigned(client, world, client_id, once("2026-11-22T21:00"))
    occurrence_id = body["occurrences"][0]["id"]
    [reminder] = await listed(client, world, client_id=client_id)  # 20:00Z
    # The window moved later (as a rescheduled occurrence's would) and the reminder did not.
    async with world.app.state.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Occurrence)
            .where(Occurrence.id == occurrence_id)
            .values(opens_at=datetime(2026, 11, 22, 20, 30, tzinfo=UTC))
        )
    assert await fire(world, "2026-11-22T20:00:00Z") == 1  # handled: checked, then skipped
    assert await due_events(world) == []
    assert await reminder_rows(client, world, occurrence_id=occurrence_id) == [
        (reminder["due_at"], reminder["local_due"], "skipped", "window_not_open")
    ]


async def test_muting_mutes_a_snoozed_reminder_too_and_unmuting_brings_back_what_is_ahead(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await client_with_token(client, world, "Europe/London")
    lead = {"lead_minutes": [60]}
    body = await assigned(client, world, client_id, once("2026-11-22T23:00"), reminders=lead)
    occurrence_id = body["occurrences"][0]["id"]
    [reminder] = await listed(client, world, client_id=client_id)  # 22:00Z, not yet sent
    freeze(world, "2026-11-22T19:00:00Z")
    snoozed = await client.post(
        f"/v1/reminders/{reminder['id']}/snooze",
        json={"minutes": 60},
        headers=world.headers(client_id),
    )
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["due_at"] == "2026-11-22T20:00:00Z"

    mute = await client.patch(
        f"/v1/clients/{client_id}", json={"reminders_muted": True}, headers=world.headers(client_id)
    )
    assert mute.status_code == 200, mute.text
    # Nothing is listed as coming: the snoozed one (which stands for the plan's 22:00 slot)
    # is muted, in its own row.
    rows = await listed(client, world, occurrence_id=occurrence_id)
    assert [(r["id"], r["due_at"], r["state"], r["reason"]) for r in rows] == [
        (reminder["id"], "2026-11-22T20:00:00Z", "skipped", "muted")
    ]
    assert await fire(world, "2026-11-22T20:00:00Z") == 0
    assert await due_events(world) == []

    freeze(world, "2026-11-22T21:00:00Z")
    unmute = await client.patch(
        f"/v1/clients/{client_id}",
        json={"reminders_muted": False},
        headers=world.headers(client_id),
    )
    assert unmute.status_code == 200, unmute.text
    # What passed while muted stays muted; what is still ahead comes back: the plan's 22:00.
    assert await reminder_rows(client, world, occurrence_id=occurrence_id) == [
        ("2026-11-22T20:00:00Z", "2026-11-22T20:00", "skipped", "muted"),
        ("2026-11-22T22:00:00Z", "2026-11-22T22:00", "scheduled", None),
    ]
    assert await fire(world, "2026-11-22T22:00:00Z") == 1
    assert len(await due_events(world)) == 1
