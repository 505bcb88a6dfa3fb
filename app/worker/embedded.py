"""The worker inside `homework serve`: one process for the API and the jobs, sharing its
database, for the demo and small installs (on by default for `make run` on SQLite).

On SQLite this is also the quickest arrangement: a commit that records an event, a reminder or
a delivery wakes the job concerned in the same process at once (app.core.wakeups), where a
separate worker process would find it at its next poll. In production, run `homework worker`
processes of their own (HOMEWORK_EMBEDDED_WORKER=false is the default there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.core.db import Database
from app.worker.loop import run_forever

logger = logging.getLogger("homework.worker")


@asynccontextmanager
async def embedded_worker(database: Database) -> AsyncIterator[None]:
    if not database.settings.runs_embedded_worker:
        yield
        return
    stop = asyncio.Event()
    worker = asyncio.create_task(run_forever(database.settings, stop, database=database))
    logger.info("embedded worker running in the API process")
    try:
        yield
    finally:
        stop.set()
        await worker
