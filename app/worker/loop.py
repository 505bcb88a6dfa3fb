"""Running the jobs: each on its own for ever (`homework worker`, the embedded worker), or all
of them once, in order, until nothing is due (`homework worker --once`, tests).

Running for ever, every job is its own task with its own transactions and its own clock reading
per batch, so a slow job (a dispatcher waiting on receivers, a large fan-out) never holds back
another: reminders fire on time while webhooks queue, and the other way round.

Logs carry counts, job names and exception types only: never rows, ids or exception messages
(a database error's message can quote the values of the row it failed on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import app
from app.core import metrics, trace_context, wakeups
from app.core.clock import Clock
from app.core.config import Settings
from app.core.db import POOL_REPORT, Database, report_pool_forever
from app.worker import backlog
from app.worker.jobs import JOBS, Job
from app.worker.listen import wake_on_new_events
from app.worker.liveness import Liveness

logger = logging.getLogger("homework.worker")
# At most one "worker progress" line this often, and none at all while nothing happens: a busy
# worker writes ~300 lines a day, an idle one none (the metrics show the rest).
REPORT_EVERY_SECONDS = 300.0
FAILED_JOB_PAUSE_SECONDS = 1.0
STARTING = "starting"


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
    """Run every job, in order, until a batch comes back short; a job that fails is logged and
    skipped (its batch rolled back), and the next job runs."""
    result = Round(counts={job.name: 0 for job in jobs})
    for job in jobs:
        try:
            while stop is None or not stop.is_set():
                handled = await _run_batch(job, database, now, batch_size)
                result.counts[job.name] += handled
                if handled < batch_size or job.forever is not None:
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
    database: Database | None = None,
    liveness: Liveness | None = None,
) -> None:
    """Every job on its own until `stop` is set; then each stops after the batch in progress,
    the dispatcher within its grace (see app.worker.dispatcher). `database`: share one (the
    embedded worker shares the API's); otherwise the worker makes its own and disposes of it.
    Every loop reports to `liveness` (the worker's probe reads it)."""
    clock = clock or Clock()
    owned = database is None
    database = database or Database(settings)
    liveness = liveness or Liveness(settings.worker_stall_seconds)
    progress: Counter[str] = Counter()
    logger.info(
        "worker started",
        extra={
            "jobs": [job.name for job in jobs],
            "interval_seconds": settings.worker_interval_seconds,
            "batch_size": settings.worker_batch_size,
        },
    )
    liveness.expect(STARTING)  # until every loop has its own expectation
    try:
        async with wake_on_new_events(database):
            tasks = [
                asyncio.create_task(
                    job.forever(database, clock.now, stop, liveness)
                    if job.forever is not None
                    else _keep_running(job, database, clock, settings, stop, progress, liveness)
                )
                for job in jobs
            ]
            if settings.metrics_enabled:
                measuring = backlog.measure_forever(database, clock.now, stop, liveness)
                tasks.append(asyncio.create_task(measuring))
            if owned:  # a shared database's pool is its owner's to report
                tasks.append(
                    asyncio.create_task(report_pool_forever(database, stop), name=POOL_REPORT)
                )
            liveness.done(STARTING)
            reporter = asyncio.create_task(_report(progress, stop))
            try:
                await asyncio.gather(*tasks)
            finally:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
    finally:
        if owned:
            await database.dispose()
        logger.info("worker stopped")


async def _keep_running(
    job: Job,
    database: Database,
    clock: Clock,
    settings: Settings,
    stop: asyncio.Event,
    progress: Counter[str],
    liveness: Liveness,
) -> None:
    wake = asyncio.Event()
    idle = job.idle_seconds or settings.worker_interval_seconds
    listening = (
        wakeups.waiting_for(job.wakes_on, wake) if job.wakes_on else contextlib.nullcontext()
    )
    with listening:
        while not stop.is_set():
            wake.clear()
            pause = idle
            liveness.expect(job.name)
            try:
                now = clock.now()
                handled = await _run_batch(job, database, now, settings.worker_batch_size)
                if handled:  # a zero would make the next report non-empty: a line while idle
                    progress[job.name] += handled
                if handled >= settings.worker_batch_size:
                    continue
                if job.next_due is not None:
                    async with database.read_sessionmaker() as session:
                        due = await job.next_due(session, now)
                    if due is not None:
                        pause = min(pause, max(0.0, (due - clock.now()).total_seconds()))
            except Exception as exc:
                progress[f"{job.name}:failed"] += 1
                logger.error("worker job failed", extra={"job": job.name, **_describe(exc)})
                pause = max(pause, FAILED_JOB_PAUSE_SECONDS)
            liveness.expect(job.name, pause)
            await wakeups.first_of(stop, wake, timeout=pause)
    liveness.done(job.name)


async def _run_batch(job: Job, database: Database, now: datetime, batch_size: int) -> int:
    """One batch of `job`, counted and timed for the metrics (a failed one too)."""
    started = time.perf_counter()
    try:
        with trace_context.new_origin():  # the trace its events' deliveries continue
            handled = await job.run(database, now, batch_size)
    except Exception:
        metrics.series(metrics.JOB_FAILURES, job.name).inc()
        raise
    finally:
        metrics.series(metrics.JOB_SECONDS, job.name).observe(time.perf_counter() - started)
    metrics.series(metrics.JOB_BATCHES, job.name).inc()
    metrics.series(metrics.JOB_ITEMS, job.name).inc(handled)
    return handled


async def _report(progress: Counter[str], stop: asyncio.Event) -> None:
    """Every few minutes, one line of what the jobs did since the last one (if anything)."""
    last = time.monotonic()
    while not stop.is_set():
        await wakeups.first_of(stop, timeout=REPORT_EVERY_SECONDS)
        if progress:
            now = time.monotonic()
            logger.info(
                "worker progress",
                extra={"counts": dict(progress), "seconds": round(now - last, 1)},
            )
            progress.clear()
            last = now


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
