"""The worker's jobs: what each one does with one batch, and what wakes it.

A batch job is a coroutine `(database, now, batch_size) -> rows handled` that handles at most
one batch in its own short transaction(s), with `now` read for that batch. The loop calls it
again at once while it returns a full batch, and otherwise waits: until a commit wakes it (a
`wakes_on` table), until its next row comes due (`next_due`), or for its idle time. The webhook
dispatcher is not a batch job: it runs on its own (`forever`), sending as slots free up.

Adding a capability is one entry in `JOBS`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core import metrics, wakeups
from app.core.clock import Clock
from app.core.db import Database
from app.services.reminders import firing
from app.services.schedules import jobs as occurrence_jobs
from app.services.webhooks import fan_out, retention
from app.worker.dispatcher import Dispatcher
from app.worker.liveness import Liveness

BatchInSession = Callable[[AsyncSession, datetime, int], Awaitable[int]]
BatchRunner = Callable[[Database, datetime, int], Awaitable[int]]
NextDue = Callable[[AsyncSession, datetime], Awaitable[datetime | None]]
Forever = Callable[
    [Database, Callable[[], datetime], asyncio.Event, Liveness], Coroutine[Any, Any, None]
]


@dataclass(frozen=True)
class Job:
    name: str
    run: BatchRunner
    wakes_on: str | None = None  # an app.core.wakeups table
    next_due: NextDue | None = None
    idle_seconds: float | None = None  # None: HOMEWORK_WORKER_INTERVAL_SECONDS
    forever: Forever | None = None  # runs on its own instead of batch by batch


def transactional(name: str, batch: BatchInSession, **options: object) -> Job:
    """A job whose batch is one service call in its own transaction, committed on return."""

    async def run(database: Database, now: datetime, batch_size: int) -> int:
        async with database.sessionmaker() as session, session.begin():
            return await batch(session, now, batch_size)

    return Job(name, run, **options)  # type: ignore[arg-type]


def worker_id() -> str:
    """Who holds a lease: this host and process, and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def fire_reminders(database: Database, now: datetime, batch_size: int) -> int:
    """Two transactions: lease a batch, then fire it. A worker that dies between the two leaves
    its lease to run out, and the next worker fires those reminders (once)."""
    owner = worker_id()
    async with database.sessionmaker() as session, session.begin():
        ids = await firing.claim_due(session, now, batch_size, owner)
    if ids:
        lateness: list[float] = []
        async with database.sessionmaker() as session, session.begin():
            await firing.fire_claimed(session, ids, owner, now, lateness=lateness)
        for seconds in lateness:  # once committed: what was sent
            metrics.REMINDER_LATENESS.observe(seconds)
    return len(ids)


_dispatchers: weakref.WeakKeyDictionary[Database, Dispatcher] = weakref.WeakKeyDictionary()


def dispatcher_for(database: Database) -> Dispatcher:
    """One dispatcher per database for one-off rounds, so that its HTTP connections and its
    circuit breakers carry over from one round to the next."""
    dispatcher = _dispatchers.get(database)
    if dispatcher is None:
        dispatcher = _dispatchers[database] = Dispatcher(database, Clock().now, worker_id())
    return dispatcher


async def dispatch_due(database: Database, now: datetime, _batch_size: int) -> int:
    """Everything due at `now`, sent: the dispatcher as one round runs it."""
    dispatcher = dispatcher_for(database)
    dispatcher.now = lambda: now
    return await dispatcher.drain()


async def dispatch_forever(
    database: Database, now: Callable[[], datetime], stop: asyncio.Event, liveness: Liveness
) -> None:
    dispatcher = Dispatcher(database, now, worker_id(), liveness=liveness)
    wake = asyncio.Event()
    try:
        with wakeups.waiting_for(wakeups.DELIVERIES, wake):
            await dispatcher.run(stop, wake, grace=database.settings.worker_shutdown_grace_seconds)
    finally:
        await dispatcher.aclose()


async def prune_old_events(database: Database, now: datetime, batch_size: int) -> int:
    async with database.sessionmaker() as session, session.begin():
        return await retention.prune(session, now, batch_size)


# In this order for a one-off round (`homework worker --once`, tests): new occurrences first,
# so that the round that opens and misses sees them; open before miss, so that an occurrence
# whose whole window passed while no worker ran is opened and missed in the same round;
# finishing once the round has resolved what it can; fan-out and dispatch after everything that
# records events. Running for ever, each job runs on its own and the order does not matter.
JOBS: tuple[Job, ...] = (
    transactional("extend_horizons", occurrence_jobs.extend_horizons),
    transactional("open_due", occurrence_jobs.open_due),
    transactional("mark_missed", occurrence_jobs.mark_missed),
    transactional("finish_assignments", occurrence_jobs.finish_assignments),
    Job(
        "fire_reminders",
        fire_reminders,
        wakes_on=wakeups.REMINDERS,
        next_due=firing.next_due_at,
    ),
    transactional("fan_out_events", fan_out.fan_out, wakes_on=wakeups.EVENTS),
    Job("dispatch_webhooks", dispatch_due, forever=dispatch_forever),
    Job("prune_old_events", prune_old_events, idle_seconds=600.0),
)
