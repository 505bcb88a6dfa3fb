"""PostgreSQL's NOTIFY as a wake-up: an event committed by any process (the API, another worker)
wakes this worker's fan-out at once instead of at its next poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.core import wakeups
from app.core.db import Database

logger = logging.getLogger("homework.worker")


@asynccontextmanager
async def wake_on_new_events(
    database: Database, wake: asyncio.Event | None = None
) -> AsyncIterator[None]:
    """On PostgreSQL, LISTEN for the events trigger's NOTIFY and set `wake` (and wake the loops
    waiting for new events) at once; elsewhere, or if listening fails, the loops poll."""
    if database.engine.dialect.name != "postgresql":
        yield
        return

    def heard(*_: object) -> None:
        if wake is not None:
            wake.set()
        wakeups.wake(wakeups.EVENTS)

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
        try:
            await raw.remove_listener("homework_events", heard)
        finally:
            await connection.close()
