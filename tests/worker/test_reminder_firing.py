"""Reminders fired by several workers over one PostgreSQL: each at most once, and the batch of
a worker that dies after its claim is fired by another once the lease (60 s) runs out.

Each worker has its own `Database` (its own engine and pool), as separate processes would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.db import Database
from app.models import Event, Reminder
from app.services.reminders import firing
from app.worker.jobs import Job, fire_reminders
from app.worker.loop import run_once
from tests.homework_helpers import assign, freeze, new_client
from tests.world import World

pytestmark = pytest.mark.usefixtures("postgres_only")

# Each assignment: 7 daily occurrences (due 20:00 London, open for a week after), each with
# 12 reminders on its day (six local times, six lead times), all due by NOW.
ASSIGNMENTS, OCCURRENCES, PER_OCCURRENCE = 4, 7, 12
POLICY = {
    "local_times": ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00"],
    "lead_minutes": [0, 30, 60, 90, 120, 150],
}
NOW = datetime.fromisoformat("2026-11-28T20:00:00+00:00")  # the seventh occurrence's due time
SMALL_BATCH = 20
FIRE = [Job("fire_reminders", fire_reminders)]


async def _build(http: httpx.AsyncClient, world: World, assignments: int) -> int:
    freeze(world, "2026-11-22T08:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": f"FREQ=DAILY;COUNT={OCCURRENCES};BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-22T20:00",
    }
    for _ in range(assignments):
        created = await assign(
            http,
            world,
            world.a.clients["A1"],
            schedule,
            reminders=POLICY,
            window={"grace_minutes": 10_080},
        )
        assert created.status_code == 201, created.text
    total = assignments * OCCURRENCES * PER_OCCURRENCE
    assert await _states(world.app.state.database) == Counter({"scheduled": total})
    return total


@pytest.fixture
async def two_workers(settings: Settings) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database(settings), Database(settings)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _states(database: Database, ids: list[str] | None = None) -> Counter[str]:
    statement = select(Reminder.state, func.count()).group_by(Reminder.state)
    if ids is not None:
        statement = statement.where(Reminder.id.in_(ids))
    async with database.sessionmaker() as session:
        return Counter({state: count for state, count in (await session.execute(statement)).all()})


async def _events_per_reminder(database: Database) -> Counter[str]:
    async with database.sessionmaker() as session:
        subjects = await session.scalars(select(Event.subject).where(Event.type == "reminder.due"))
        return Counter(subject["reminder_id"] for subject in subjects)


async def _claim(database: Database, now: datetime, batch: int, owner: str) -> list[str]:
    async with database.sessionmaker() as session, session.begin():
        return await firing.claim_due(session, now, batch, owner)


async def _fire(database: Database, ids: list[str], owner: str, now: datetime) -> dict[str, int]:
    async with database.sessionmaker() as session, session.begin():
        return await firing.fire_claimed(session, ids, owner, now)


async def test_two_workers_at_once_fire_each_reminder_exactly_once(
    client: httpx.AsyncClient, world: World, two_workers: tuple[Database, Database]
) -> None:
    total = await _build(client, world, ASSIGNMENTS)
    first, second = two_workers

    one, other = await asyncio.gather(
        run_once(first, NOW, SMALL_BATCH), run_once(second, NOW, SMALL_BATCH)
    )

    assert await _states(first) == Counter({"sent": total})
    fired = await _events_per_reminder(first)
    assert len(fired) == total and set(fired.values()) == {1}
    # Between them they claimed each reminder once; they shared the batches.
    assert one["fire_reminders"] + other["fire_reminders"] == total
    assert 0 < one["fire_reminders"] < total
    # Nothing is left to fire.
    again = await asyncio.gather(
        run_once(first, NOW, SMALL_BATCH, jobs=FIRE), run_once(second, NOW, SMALL_BATCH, jobs=FIRE)
    )
    assert list(again) == [{"fire_reminders": 0}] * 2
    assert sum((await _events_per_reminder(first)).values()) == total


async def test_a_worker_that_dies_after_its_claim_leaves_the_batch_until_the_lease_ends(
    client: httpx.AsyncClient, world: World, two_workers: tuple[Database, Database]
) -> None:
    total = await _build(client, world, 1)
    survivor, dying = two_workers
    # The claim commits, then the process dies before it fires anything.
    doomed = await _claim(dying, NOW, SMALL_BATCH, "dead-worker")
    assert len(doomed) == SMALL_BATCH
    assert await _states(survivor, doomed) == Counter({"scheduled": SMALL_BATCH})

    # 30 s later the lease still holds: the others fire, the claimed ones do not.
    counts = await run_once(survivor, NOW + timedelta(seconds=30), SMALL_BATCH, jobs=FIRE)
    assert counts == {"fire_reminders": total - SMALL_BATCH}
    assert await _states(survivor, doomed) == Counter({"scheduled": SMALL_BATCH})
    assert set(await _events_per_reminder(survivor)).isdisjoint(doomed)

    # 61 s later the lease has run out: another worker fires each of them, once.
    counts = await run_once(survivor, NOW + timedelta(seconds=61), SMALL_BATCH, jobs=FIRE)
    assert counts == {"fire_reminders": SMALL_BATCH}
    assert await _states(survivor) == Counter({"sent": total})
    fired = await _events_per_reminder(survivor)
    assert len(fired) == total and set(fired.values()) == {1}


async def test_a_worker_whose_lease_ran_out_cannot_fire_what_another_claimed(
    client: httpx.AsyncClient, world: World, two_workers: tuple[Database, Database]
) -> None:
    await _build(client, world, 1)
    slow, fast = two_workers
    stalled = await _claim(slow, NOW, SMALL_BATCH, "slow-worker")
    later = NOW + timedelta(seconds=61)
    taken = await _claim(fast, later, SMALL_BATCH, "fast-worker")
    assert taken == stalled  # the same batch, due first, its lease over

    # The slow worker wakes up: the batch is no longer its own, it fires nothing.
    assert await _fire(slow, stalled, "slow-worker", later) == {}
    assert await _fire(fast, taken, "fast-worker", later) == {"sent": SMALL_BATCH}
    assert await _fire(slow, stalled, "slow-worker", later) == {}
    fired = await _events_per_reminder(fast)
    assert sorted(fired) == sorted(stalled) and set(fired.values()) == {1}


async def test_the_clients_daily_cap_holds_across_workers_firing_at_once(
    client: httpx.AsyncClient, world: World, two_workers: tuple[Database, Database]
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    client_id = await new_client(client, world, "Europe/London", max_reminders_per_day=1)
    for _ in range(2):  # two pieces of homework, each reminded at 20:00
        created = await assign(
            client, world, client_id, {"type": "once", "due_at": "2026-11-22T21:00"}
        )
        assert created.status_code == 201, created.text
    first, second = two_workers
    due = datetime.fromisoformat("2026-11-22T20:00:00+00:00")
    one = await _claim(first, due, 1, "w1")
    other = await _claim(second, due, 1, "w2")
    assert len(one) == len(other) == 1 and one != other

    outcomes = await asyncio.gather(_fire(first, one, "w1", due), _fire(second, other, "w2", due))

    assert sorted(outcomes, key=str) == [{"sent": 1}, {"skipped:daily_cap": 1}]
    assert await _states(first) == Counter({"sent": 1, "skipped": 1})
    assert len(await _events_per_reminder(first)) == 1
