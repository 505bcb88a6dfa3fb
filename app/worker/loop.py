"""The worker loop: every few seconds, run each job until it has nothing left to do.

A job is a name and a coroutine that handles one batch and returns how many rows it handled.
Most jobs are a service function run in its own short transaction (`transactional(...)`);
a job that must call the network (webhook delivery) gets the `Database` itself, so that it
can commit its claim before the call and record the outcome in a second transaction.
Adding a capability is one line in `JOBS`.

Logs carry counts, job names and exception types only: never rows, ids or exception messages
(a database error's message can quote the values of the row it failed on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

import app
from app.core.clock import Clock
from app.core.config import Settings
from app.core.db import Database
from app.services.reminders import service as reminders
from app.services.schedules import jobs as occurrence_jobs
from app.services.webhooks import delivery as webhook_delivery
from app.worker import webhooks

logger = logging.getLogger("homework.worker")

BatchInSession = Callable[[AsyncSession, datetime, int], Awaitable[int]]
BatchRunner = Callable[[Database, datetime, int], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    """`run(database, now, batch_size)` handles at most one batch; it is called again while it
    returns `batch_size` (a full batch means there may be more)."""

    name: str
    run: BatchRunner


def transactional(name: str, batch: BatchInSession) -> Job:
    """A job whose batch is one service call in its own transaction, committed on return."""

    async def run(database: Database, now: datetime, batch_size: int) -> int:
        async with database.sessionmaker() as session, session.begin():
            return await batch(session, now, batch_size)

    return Job(name, run)


async def fire_reminders(database: Database, now: datetime, batch_size: int) -> int:
    """Two transactions: lease a batch, then fire it. A worker that dies between the two leaves
    its lease to run out, and the next worker fires those reminders (once)."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{id(asyncio.current_task())}"
    async with database.sessionmaker() as session, session.begin():
        ids = await reminders.claim_due(session, now, batch_size, owner)
    if ids:
        async with database.sessionmaker() as session, session.begin():
            await reminders.fire_claimed(session, ids, owner, now)
    return len(ids)


# In this order: new occurrences first, so that a round that opens and misses sees them; then
# open before miss, so that an occurrence whose whole window passed while no worker ran is
# opened and missed in the same round; finishing last, once the round has resolved what it can.
JOBS: tuple[Job, ...] = (
    transactional("extend_horizons", occurrence_jobs.extend_horizons),
    transactional("open_due", occurrence_jobs.open_due),
    transactional("mark_missed", occurrence_jobs.mark_missed),
    transactional("finish_assignments", occurrence_jobs.finish_assignments),
    Job("fire_reminders", fire_reminders),
    # After everything that records events in this round, so that they go out in it.
    transactional("fan_out_events", webhook_delivery.fan_out),
    Job("dispatch_webhooks", webhooks.dispatch_webhooks),
    Job("prune_old_events", webhooks.prune_old),
)


@dataclass
class Round:
    counts: dict[str, int]
    failed: list[str] = field(default_factory=list)


async def run_round(
    database: Database,
    now: datetime,
    batch_size: int,
    *,
    jobs: Sequence[Job] = JOBS,
    stop: asyncio.Event | None = None,
) -> Round:
    """Run every job until a batch comes back short; a job that fails is logged and skipped
    for this round (its batch rolled back), and the next job runs."""
    result = Round(counts={job.name: 0 for job in jobs})
    for job in jobs:
        try:
            while stop is None or not stop.is_set():
                handled = await job.run(database, now, batch_size)
                result.counts[job.name] += handled
                if handled < batch_size:
                    break
        except Exception as exc:
            result.failed.append(job.name)
            logger.error("worker job failed", extra={"job": job.name, **_describe(exc)})
    return result


async def run_once(
    database: Database,
    now: datetime,
    batch_size: int,
    *,
    jobs: Sequence[Job] = JOBS,
    stop: asyncio.Event | None = None,
) -> dict[str, int]:
    """One round at `now`: how many rows each job handled."""
    return (await run_round(database, now, batch_size, jobs=jobs, stop=stop)).counts


async def run_once_with(settings: Settings, *, clock: Clock | None = None) -> Round:
    """One round on the real clock with a database of its own (`homework worker --once`)."""
    database = Database(settings)
    try:
        now = (clock or Clock()).now()
        return await run_round(database, now, settings.worker_batch_size)
    finally:
        await database.dispose()


async def run_forever(
    settings: Settings,
    stop: asyncio.Event,
    *,
    jobs: Sequence[Job] = JOBS,
    clock: Clock | None = None,
) -> None:
    """A round every `worker_interval_seconds` until `stop` is set. A round in progress stops
    between two batches: every batch commits or rolls back whole."""
    clock = clock or Clock()
    database = Database(settings)
    logger.info(
        "worker started",
        extra={
            "jobs": [job.name for job in jobs],
            "interval_seconds": settings.worker_interval_seconds,
            "batch_size": settings.worker_batch_size,
        },
    )
    wake = asyncio.Event()
    async with webhooks.wake_on_new_events(database, wake):
        await _rounds(settings, stop, wake, database, jobs, clock)


async def _rounds(
    settings: Settings,
    stop: asyncio.Event,
    wake: asyncio.Event,
    database: Database,
    jobs: Sequence[Job],
    clock: Clock,
) -> None:
    try:
        while not stop.is_set():
            wake.clear()
            started = time.monotonic()
            result = await run_round(
                database, clock.now(), settings.worker_batch_size, jobs=jobs, stop=stop
            )
            elapsed = time.monotonic() - started
            logger.info(
                "worker round",
                extra={
                    "counts": result.counts,
                    "failed": result.failed,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
            # Sleep until the interval ends, a new event is committed (NOTIFY), or stop.
            pause = max(0.0, settings.worker_interval_seconds - elapsed)
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(waiters, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
    finally:
        await database.dispose()
        logger.info("worker stopped")


_APP_DIR = str(Path(app.__file__).parent)
_IN_APP = _APP_DIR + os.sep


def _describe(exc: BaseException) -> dict[str, str]:
    """The exception's type and where in our code it was raised; never its message."""
    described = {"error": f"{type(exc).__module__}.{type(exc).__qualname__}"}
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(_IN_APP)]
    if ours:
        described["at"] = (
            f"{Path(ours[-1].filename).relative_to(_APP_DIR).as_posix()}:{ours[-1].lineno}"
        )
    return described
