"""One tenant's receiver cannot hold back another's: the worker running for real, as a vendor
would meet it, with real receivers on loopback and the real clock.

Tenant B's receiver misbehaves (it hangs past the timeout, or answers slowly with a backlog of
1,000 deliveries); tenant A's client reports feeling overwhelmed and has a reminder coming
due. A's clinician's backend must hear of both within a second or so, as if B did not exist.
Each fault lasts a few seconds: the figures at scale are in bench/worker_isolation.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from app.core.clock import FixedClock
from app.core.config import Settings
from app.main import create_app
from app.models import Reminder
from app.services.events import EventType, record_event
from app.worker.loop import run_forever
from tests.conftest import client_for
from tests.homework_helpers import assign, complete
from tests.webhook_receiver import Receiver, create_endpoint, serve_receiver
from tests.world import World, build_world

# Far above what the victim's deliveries take here, far below what B's trouble costs.
PROMPT = 1.5


@contextmanager
def receivers(count: int) -> Iterator[list[Receiver]]:
    with serve_receiver() as one, serve_receiver() as two, serve_receiver() as three:
        yield [one, two, three][:count]


def allowing(make_settings: Any, *receivers: Receiver, **overrides: object) -> Settings:
    hosts = ",".join(f"127.0.0.1:{r.port}" for r in receivers)
    settings: Settings = make_settings(
        outbound_allow_http=True, outbound_allowed_hosts=hosts, **overrides
    )
    return settings


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """`homework worker`, in this process but with a database (pool) of its own."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_forever(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def arrivals(receiver: Receiver, event_type: str) -> list[float]:
    return [r.received_at for r in receiver.requests if r.payload["type"] == event_type]


async def noise_for_b(world: World, count: int) -> None:
    async with world.app.state.database.sessionmaker() as session, session.begin():
        for n in range(count):
            record_event(
                session,
                world.b.id,
                EventType.assignment_created,
                client_id=world.b.clients["B1"],
                assignment_id=f"asg_noise{n:021d}",
            )


async def backlog_for_b(app: FastAPI, receiver: Receiver, count: int) -> World:
    """The two tenants, B's endpoint at `receiver`, and `count` events of B's to send it."""
    world = await build_world(app)
    async with client_for(app) as http:
        endpoint = await create_endpoint(http, world, receiver.url(), role="system_b")
    receiver.secrets = [endpoint["secret"]]
    await noise_for_b(world, count)
    return world


async def homework_for_a1(http: httpx.AsyncClient, world: World, **extra: Any) -> Any:
    """A one-off for client A1, due in three hours (the API's clock set to the real one)."""
    now = datetime.now(UTC)
    world.app.state.clock = FixedClock(now)
    due = (now + timedelta(hours=3)).astimezone(ZoneInfo("Europe/London"))
    schedule = {"type": "once", "due_at": f"{due:%Y-%m-%dT%H:%M}"}
    created = await assign(http, world, world.a.clients["A1"], schedule, **extra)
    assert created.status_code == 201, created.text
    return created.json()


async def a_reminder_due_in(world: World, http: httpx.AsyncClient, seconds: float) -> datetime:
    """Homework for A1 whose reminder is moved to come due `seconds` from now."""
    created = await homework_for_a1(http, world, reminders={"lead_minutes": [60]})
    due = datetime.now(UTC) + timedelta(seconds=seconds)
    async with world.app.state.database.sessionmaker() as session, session.begin():
        moved = await session.execute(
            update(Reminder)
            .where(Reminder.assignment_id == created["id"], Reminder.state == "scheduled")
            .values(due_at=due)
        )
        assert moved.rowcount == 1  # type: ignore[attr-defined]
    return due


@pytest.mark.parametrize("trouble", ["hangs", "slow_backlog"])
async def test_another_tenants_bad_receiver_delays_no_distress_flag_and_no_reminder(
    make_settings: Any, trouble: str
) -> None:
    with receivers(2) as (victim, noisy):
        settings = allowing(make_settings, victim, noisy, webhook_timeout_seconds=1.0)
        app = create_app(settings)
        try:
            world = await build_world(app)
            async with client_for(app) as http:
                victim.secrets = [(await create_endpoint(http, world, victim.url()))["secret"]]
                await create_endpoint(http, world, noisy.url(), role="system_b")
                if trouble == "hangs":
                    noisy.while_answering = lambda: time.sleep(3.0)  # past the 1 s timeout
                    await noise_for_b(world, 40)
                else:
                    noisy.while_answering = lambda: time.sleep(0.3)
                    await noise_for_b(world, 1000)
                reminder_due = await a_reminder_due_in(world, http, 2.5)
                occurrence = (await homework_for_a1(http, world))["occurrences"][0]["id"]

                async with running_worker(settings):
                    # B's trouble in full swing: its slots taken, its backlog queued.
                    await until(lambda: len(noisy.requests) >= 4 or trouble == "hangs", 10)
                    await asyncio.sleep(1.2)
                    flagged_at = time.time()
                    response = await complete(
                        http, world, occurrence, status="not_done", barriers=["felt_overwhelmed"]
                    )
                    assert response.status_code == 201, response.text
                    await until(lambda: arrivals(victim, "completion.distress_flagged"), 10)
                    await until(lambda: arrivals(victim, "reminder.due"), 10)
            flag_latency = arrivals(victim, "completion.distress_flagged")[0] - flagged_at
            reminder_lateness = arrivals(victim, "reminder.due")[0] - reminder_due.timestamp()
            assert flag_latency < PROMPT, flag_latency
            assert reminder_lateness < PROMPT, reminder_lateness
            assert all(r.verified_with for r in victim.requests)
        finally:
            await app.state.database.dispose()
