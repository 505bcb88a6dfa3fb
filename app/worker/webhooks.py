"""The worker's webhook jobs: fan out, dispatch, prune; and the wake-up on new events."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from app.core.db import Database
from app.core.outbound import OutboundPolicy, guarded_client
from app.services.webhooks import delivery as webhook_delivery
from app.services.webhooks.delivery import Sender

logger = logging.getLogger("homework.worker")
RETENTION = timedelta(days=30)
_senders: weakref.WeakKeyDictionary[Database, Sender] = weakref.WeakKeyDictionary()


def sender_for(database: Database) -> Sender:
    """One HTTP client per worker process (connection reuse), made on first use."""
    sender = _senders.get(database)
    if sender is None:
        settings = database.settings
        http = guarded_client(
            OutboundPolicy(
                allow_http=settings.outbound_allow_http,
                allowed_hosts=settings.allowed_outbound_hosts,
            ),
            timeout=settings.webhook_timeout_seconds,
        )
        sender = Sender(
            http,
            max_concurrency=settings.webhook_max_concurrency,
            per_endpoint=settings.webhook_max_per_endpoint,
            deadline=settings.webhook_timeout_seconds,
        )
        _senders[database] = sender
    return sender


def lease_for(timeout: float) -> timedelta:
    """Long enough for a POST that starts before `send_by` to end within it (see below)."""
    return max(webhook_delivery.LEASE, timedelta(seconds=2 * timeout + 10))


async def dispatch_webhooks(database: Database, now: datetime, batch_size: int) -> int:
    """Claim, send (no transaction open during the POSTs), record."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{id(asyncio.current_task())}"
    timeout = database.settings.webhook_timeout_seconds
    lease = lease_for(timeout)
    started = time.monotonic()
    async with database.sessionmaker() as session, session.begin():
        outgoing = await webhook_delivery.claim(session, now, batch_size, owner, lease)
    if not outgoing:
        return 0
    # A batch to one slow endpoint queues behind its per-endpoint limit; a POST starting late
    # could still run when the lease ends and another worker sends the same delivery. So none
    # starts after `send_by`: each then ends (the sender's deadline) 5 s before the lease does.
    send_by = started + lease.total_seconds() - timeout - 5
    outcomes = await sender_for(database).send_all(outgoing, now, send_by=send_by)
    async with database.sessionmaker() as session, session.begin():
        await webhook_delivery.record(session, outcomes, owner, now)
    return len(outgoing)


async def prune_old(database: Database, now: datetime, batch_size: int) -> int:
    async with database.sessionmaker() as session, session.begin():
        return await webhook_delivery.prune(session, now, batch_size, RETENTION)


@asynccontextmanager
async def wake_on_new_events(database: Database, wake: asyncio.Event) -> AsyncIterator[None]:
    """On PostgreSQL, LISTEN for the events trigger's NOTIFY and set `wake` at once; elsewhere
    (or if listening fails) the worker simply polls."""
    if database.engine.dialect.name != "postgresql":
        yield
        return

    def heard(*_: object) -> None:
        wake.set()

    connection = None
    try:
        connection = await database.engine.connect()
        raw: Any = (await connection.get_raw_connection()).driver_connection
        await raw.add_listener("homework_events", heard)
    except Exception as exc:  # listening is an optimisation; polling still works
        logger.warning("LISTEN unavailable; polling only", extra={"error": type(exc).__name__})
        if connection is not None:  # not left checked out of the pool for the worker's life
            await connection.close()
        yield
        return
    try:
        yield
    finally:
        await raw.remove_listener("homework_events", heard)
        await connection.close()
