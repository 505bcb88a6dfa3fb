"""Several workers over one PostgreSQL: each row is handled once, and a worker that dies
mid-batch leaves its rows to the next one.

Each worker has its own `Database` (its own engine and pool), as separate processes would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.core.config import Settings
from app.core.db import Database
from app.models import Assignment, Event, Occurrence
from app.services.schedules.jobs import mark_missed, open_due
from app.worker.jobs import JOBS, transactional
from app.worker.loop import run_once
from tests.homework_helpers import assign, freeze
from tests.world import World

# Without the pruning of old events: these runs happen long after the events were written
# (by the real clock), and the events are what the tests count.
KEEPING_EVENTS = [job for job in JOBS if job.name != "prune_old_events"]

pytestmark = pytest.mark.usefixtures("postgres_only")

# 11 series of 28 daily occurrences: 308 occurrences, all closed by LONG_AFTER.
SERIES, PER_SERIES = 11, 28
LONG_AFTER = datetime.fromisoformat("2027-02-01T00:00:00+00:00")
SMALL_BATCH = 20


async def _build(http: httpx.AsyncClient, world: World) -> list[str]:
    freeze(world, "2026-11-22T09:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": f"FREQ=DAILY;COUNT={PER_SERIES};BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-22T20:00",
    }
    ids = []
    for _ in range(SERIES):
        created = await assign(http, world, world.a.clients["A1"], schedule)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    return ids


@pytest.fixture
async def two_workers(settings: Settings) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database(settings), Database(settings)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _statuses(database: Database) -> Counter[str]:
    async with database.sessionmaker() as session:
        rows = await session.execute(
            select(Occurrence.status, func.count()).group_by(Occurrence.status)
        )
        return Counter({status: count for status, count in rows.all()})


async def _missed_events(database: Database) -> Counter[str]:
    async with database.sessionmaker() as session:
        subjects = await session.scalars(
            select(Event.subject).where(Event.type == "occurrence.missed")
        )
        return Counter(subject["occurrence_id"] for subject in subjects)


async def test_two_workers_at_once_miss_each_occurrence_exactly_once(
    client: httpx.AsyncClient, world: World, two_workers: tuple[Database, Database]
) -> None:
    assignment_ids = await _build(client, world)
    total = SERIES * PER_SERIES
    first, second = two_workers
    assert sum((await _statuses(first)).values()) == total

    one, other = await asyncio.gather(
        run_once(first, LONG_AFTER, SMALL_BATCH, jobs=KEEPING_EVENTS),
        run_once(second, LONG_AFTER, SMALL_BATCH, jobs=KEEPING_EVENTS),
    )

    assert await _statuses(first) == Counter({"missed": total})
    missed = await _missed_events(first)
    assert len(missed) == total and set(missed.values()) == {1}
    # Between them they did each piece of work once; neither did it all (they shared batches).
    assert one["mark_missed"] + other["mark_missed"] == total
    assert one["finish_assignments"] + other["finish_assignments"] == SERIES
    assert 0 < one["mark_missed"] < total
    async with first.sessionmaker() as session:
        ended = await session.scalars(
            select(Assignment.status).where(Assignment.id.in_(assignment_ids))
        )
        assert list(ended) == ["expired"] * SERIES


async def test_a_worker_that_dies_mid_batch_leaves_its_rows_to_the_next(
    client: httpx.AsyncClient, world: World, two_workers: tuple[Database, Database]
) -> None:
    await _build(client, world)
    total = SERIES * PER_SERIES
    survivor, dying = two_workers
    # Open everything first, so that the dying worker's batch is a batch of missable rows.
    opened = await run_once(survivor, LONG_AFTER, 500, jobs=[transactional("open", open_due)])
    assert opened == {"open": total - SERIES}  # each series' first was open from the start

    # The dying worker claims a batch and does all of its work, but never commits.
    doomed = dying.sessionmaker()
    transaction = await doomed.begin()
    pid = await doomed.scalar(text("SELECT pg_backend_pid()"))
    try:
        assert await mark_missed(doomed, LONG_AFTER, SMALL_BATCH) == SMALL_BATCH
        # Meanwhile another worker skips the claimed rows (without waiting for them) and does
        # everything else.
        counts = await asyncio.wait_for(
            run_once(survivor, LONG_AFTER, SMALL_BATCH, jobs=KEEPING_EVENTS), timeout=20
        )
        assert counts["mark_missed"] == total - SMALL_BATCH
        assert (await _statuses(survivor))["open"] == SMALL_BATCH
        assert counts["finish_assignments"] < SERIES  # those with a claimed row are not over
    finally:
        # The process dies: the server ends its session, its transaction rolls back.
        async with survivor.sessionmaker() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(DBAPIError):  # the connection is gone
        await transaction.commit()
    await doomed.close()

    # The next round picks the rows up: each occurrence is missed once, with one event.
    async def rows_released() -> dict[str, int]:
        for _ in range(50):
            counts = await run_once(survivor, LONG_AFTER, SMALL_BATCH, jobs=KEEPING_EVENTS)
            if counts["mark_missed"]:
                return counts
            await asyncio.sleep(0.05)
        return counts

    after = await rows_released()
    assert after["mark_missed"] == SMALL_BATCH
    assert await _statuses(survivor) == Counter({"missed": total})
    missed = await _missed_events(survivor)
    assert len(missed) == total and set(missed.values()) == {1}
    async with survivor.sessionmaker() as session:
        still_active = await session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.status == "active")
        )
    assert still_active == 0
