"""The worker reads through indexes too: no sequential scan of a table that grows.

Every statement of a worker round with work in every job (occurrences to open, reminders due,
events to fan out, deliveries to send), and of the dispatcher's lease renewal and hand-back, is
captured as it is sent and explained with its own parameters, `enable_seqscan` off, as
tests/test_query_plans.py does for the API. PostgreSQL only: its plans are what production runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import Reminder, WebhookDelivery
from app.services.webhooks import dispatch
from app.worker.loop import run_once
from tests.test_query_plans import capture, explain, seqscan_off
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    create_endpoint,
    receiver_settings,
)
from tests.worker.test_isolation import homework_for_a1
from tests.world import World

pytestmark = pytest.mark.usefixtures("postgres_only")


@pytest.fixture
async def app(make_settings: Any, receiver: Receiver) -> AsyncIterator[FastAPI]:
    async with app_for(receiver_settings(make_settings, receiver)) as application:
        yield application


async def test_no_worker_statement_scans_a_large_table(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    database = world.app.state.database
    endpoint = await create_endpoint(client, world, receiver.url())
    receiver.secrets = [endpoint["secret"]]
    created = await homework_for_a1(client, world, reminders={"lead_minutes": [60]})
    now = datetime.now(UTC)
    async with database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Reminder)
            .where(Reminder.assignment_id == created["id"])
            .values(due_at=now - timedelta(seconds=1))
        )
    for _ in range(3):
        await add_event(world)

    engine: AsyncEngine = database.engine
    with capture(engine) as seen:
        counts = await run_once(database, now, 50)
        async with database.sessionmaker() as session, session.begin():
            ids = list((await session.scalars(select(WebhookDelivery.id))).all())
            await dispatch.extend_leases(session, ids, "host:1:plans", now)
            await dispatch.release(session, ids, "host:1:plans")
        await asyncio.sleep(0)  # asyncpg hands its log records over with call_soon
    # Something to plan in every job that matters here.
    assert counts["fire_reminders"] >= 1 and counts["fan_out_events"] >= 4
    assert counts["dispatch_webhooks"] >= 4, counts

    async with engine.connect() as connection:
        await seqscan_off(connection)
        plans = await explain(connection, "a worker round", seen)
        await connection.rollback()
    touched = {"occurrences", "reminders", "events", "webhook_deliveries", "webhook_attempts"}
    assert touched <= plans.relations, sorted(plans.relations)
    assert not plans.seq_scans, "sequential scans of large tables:\n" + "\n".join(plans.seq_scans)
