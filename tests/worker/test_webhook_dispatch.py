"""The dispatcher as an operator relies on it: nothing lost when a worker dies, nothing sent
twice at once by two workers, no transaction open during a POST, and a worker that wakes when
an event commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.core.data_keys import DataKeys
from app.core.db import Database
from app.models import Event, WebhookAttempt
from app.services.events import EventType, record_event
from app.services.webhooks import dispatch, fan_out, sender
from app.worker.dispatcher import Dispatcher
from app.worker.jobs import dispatcher_for, transactional
from app.worker.listen import wake_on_new_events
from app.worker.loop import run_once
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    attempts_of,
    create_endpoint,
    deliver,
    deliveries_of,
    now_utc,
    receiver_settings,
)
from tests.world import World

FAN_OUT = transactional("fan_out_events", fan_out.fan_out)


@pytest.fixture
async def app(make_settings: Any, receiver: Receiver) -> AsyncIterator[FastAPI]:
    async with app_for(receiver_settings(make_settings, receiver)) as application:
        yield application


async def _subscribe(http: httpx.AsyncClient, world: World, receiver: Receiver) -> str:
    endpoint = await create_endpoint(http, world, receiver.url())
    receiver.secrets = [endpoint["secret"]]
    endpoint_id: str = endpoint["id"]
    return endpoint_id


@pytest.mark.parametrize("dies", ["before_sending", "after_sending"])
async def test_a_worker_that_dies_mid_delivery_leaves_it_to_the_next_after_its_lease(
    client: httpx.AsyncClient, world: World, receiver: Receiver, dies: str
) -> None:
    endpoint_id = await _subscribe(client, world, receiver)
    event_id = await add_event(world)
    database: Database = world.app.state.database
    t0 = now_utc()
    await run_once(database, t0, 50, jobs=[FAN_OUT])

    # The claim commits; then the process dies, before or after its POST, never recording.
    async with database.sessionmaker() as session, session.begin():
        claimed = await dispatch.claim(
            session,
            t0,
            {endpoint_id: 50},
            "host:4242:dies",
            timedelta(seconds=60),
            keys=DataKeys.from_settings(database.settings),
        )
    assert len(claimed) == 1
    if dies == "after_sending":
        receiver.now = t0
        poster = dispatcher_for(database).http  # the worker's own, guard and all
        await sender.attempt(poster, claimed[0], lambda: t0, 5.0)
    sent_before = len(receiver.requests)

    # Nobody else touches it while the lease lasts...
    for seconds in (1, 30, 59):
        counts = await deliver(world, receiver, t0 + timedelta(seconds=seconds))
        assert counts["dispatch_webhooks"] == 0
    assert len(receiver.requests) == sent_before
    # ...and the next worker delivers it once the lease has run out: late, not lost.
    await deliver(world, receiver, t0 + timedelta(seconds=60))
    assert receiver.ids() == [event_id] * (sent_before + 1)
    assert all(r.verified_with for r in receiver.requests)
    (delivery,) = await deliveries_of(world)
    assert delivery.state == "delivered" and delivery.lease_owner is None
    assert [a.status_code for a in await attempts_of(world, delivery.id)] == [200]


async def test_a_post_that_cannot_end_within_its_lease_is_handed_back_not_sent(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    """An attempt starts only if its deadline ends inside the lease it holds: one that could
    still be in flight when the lease ran out (and another worker sent the same delivery) is
    handed back unsent, its lease released at once."""
    await _subscribe(client, world, receiver)
    event_id = await add_event(world)
    database: Database = world.app.state.database
    t0 = now_utc()
    await run_once(database, t0, 50, jobs=[FAN_OUT])
    dispatcher = Dispatcher(database, lambda: t0, "host:1:slow")
    dispatcher.lease_seconds = dispatcher.timeout  # a lease no longer than one attempt
    try:
        assert await dispatcher.drain() == 0
    finally:
        await dispatcher.aclose()
    assert receiver.requests == [] and dispatcher.counts["handed_back"] == 1

    # Handed back: no attempt was logged, no lease is left, and the next round sends it.
    (delivery,) = await deliveries_of(world)
    assert delivery.attempt_count == 0 and await attempts_of(world, delivery.id) == []
    assert delivery.lease_owner is None and delivery.lease_until is None
    await deliver(world, receiver, t0)
    assert receiver.ids() == [event_id]


async def test_no_transaction_is_open_while_a_receiver_is_called(
    client: httpx.AsyncClient, world: World, receiver: Receiver, backend: str
) -> None:
    await _subscribe(client, world, receiver)
    url = make_url(world.app.state.settings.database_url)
    seen: list[object] = []

    def on_sqlite() -> None:
        # Our sessions begin IMMEDIATE: an open worker transaction would hold the write lock.
        connection = sqlite3.connect(str(url.database), timeout=0.2, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            seen.append("writable")
        except sqlite3.OperationalError as exc:
            seen.append(str(exc))
        finally:
            connection.close()

    async def open_transactions() -> int:
        dsn = url.set(drivername="postgresql").render_as_string(False)
        probe = "webhook-receiver-probe"  # the other requests' probes are not the worker
        connection = await asyncpg.connect(dsn, server_settings={"application_name": probe})
        try:
            count: int = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND application_name <> $1 "
                "AND xact_start IS NOT NULL",
                probe,
            )
            return count
        finally:
            await connection.close()

    def on_postgres() -> None:
        seen.append(asyncio.run(open_transactions()))

    receiver.while_answering = on_sqlite if backend == "sqlite" else on_postgres
    for _ in range(3):
        await add_event(world)
    await deliver(world, receiver, now_utc())
    assert len(receiver.requests) == 3
    assert seen == (["writable"] * 3 if backend == "sqlite" else [0, 0, 0])


@pytest.mark.usefixtures("postgres_only")
async def test_two_workers_never_make_the_same_attempt_twice(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    await _subscribe(client, world, receiver)
    total = 100
    async with world.app.state.database.sessionmaker() as session, session.begin():
        for n in range(total):
            record_event(
                session,
                world.a.id,
                EventType.assignment_created,
                client_id=world.a.clients["A1"],
                assignment_id=f"asg_01jd8x5m2q7c9v3k4t6w8y{n:04d}",
            )
    settings = world.app.state.settings
    first, second = Database(settings), Database(settings)
    receiver.now = t0 = now_utc()
    receiver.while_answering = lambda: time.sleep(0.01)  # long enough for both to take part
    try:
        one, other = await asyncio.gather(run_once(first, t0, 10), run_once(second, t0, 10))
    finally:
        await first.dispose()
        await second.dispose()

    # Each delivery once: one POST, one attempt; and the work was shared between them.
    received = Counter(receiver.ids())
    assert len(received) == total and set(received.values()) == {1}
    assert all(r.verified_with for r in receiver.requests)
    assert one["dispatch_webhooks"] + other["dispatch_webhooks"] == total
    assert one["dispatch_webhooks"] > 0 and other["dispatch_webhooks"] > 0
    assert {d.state for d in await deliveries_of(world)} == {"delivered"}
    async with world.app.state.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookAttempt)) == total
        sequences = sorted((await session.scalars(select(Event.sequence))).all())
    # Two fan-outs at once still number the tenant's events 1..n, each once.
    assert sequences == list(range(1, total + 1))


@pytest.mark.usefixtures("postgres_only")
async def test_a_committed_event_wakes_a_listening_worker(world: World) -> None:
    database: Database = world.app.state.database
    wake = asyncio.Event()
    async with wake_on_new_events(database, wake):
        # NOTIFY is transactional: an event that rolls back wakes nobody.
        async with database.sessionmaker() as session:
            transaction = await session.begin()
            record_event(
                session,
                world.a.id,
                EventType.assignment_created,
                client_id=None,
                assignment_id="asg_01jd8x5m2q7c9v3k4t6w8y0z1d",
            )
            await session.flush()
            await transaction.rollback()
        await asyncio.sleep(0.2)
        assert not wake.is_set()

        started = time.monotonic()
        await add_event(world)
        await asyncio.wait_for(wake.wait(), 2)
        assert time.monotonic() - started < 1
