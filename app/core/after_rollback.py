"""Writes that must outlive the rollback of the request that made them.

A request that fails is rolled back whole (app.core.routing.TransactionRoute), which is what a
failed change needs, but some facts are about the failure itself: the audit row of a denied
read exists *because* the request is answered 404 or 403. A service keeps such a write on its
session; once the request's transaction is rolled back, the route runs it in a short
transaction of its own on the same session (its own connection and transaction are gone by
then, so on SQLite no write lock is held against it, and on PostgreSQL the driver path starts
afresh). A request that succeeds commits nothing kept here: only a failure keeps a write.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("homework.after_rollback")

KeptWrite = Callable[[AsyncSession], Awaitable[None]]
_KEY = "homework.after_rollback"


def keep_past_rollback(session: AsyncSession, write: KeptWrite) -> None:
    """Run `write` in its own transaction once this session's transaction is rolled back."""
    session.info.setdefault(_KEY, []).append(write)


async def run_kept_writes(session: AsyncSession) -> None:
    """After the rollback: the kept writes, committed together. Never raises: the request's own
    error is its answer, and a write lost here (the database gone, say) must not replace it."""
    writes: list[KeptWrite] = session.info.pop(_KEY, [])
    if not writes:
        return
    try:
        for write in writes:
            await write(session)
        await session.commit()
    except Exception as error:
        with contextlib.suppress(Exception):  # a connection that is gone cannot roll back
            await session.rollback()
        # The type only: a database error's text may quote the row.
        log.error("a write kept past a rollback was lost", extra={"error": type(error).__name__})
