"""In-process wake-ups: a committed transaction that wrote work for the worker tells the worker's
loops in the same process at once, instead of leaving them to find it at their next poll.

A transaction that adds rows to a watched table (events, reminders, webhook deliveries) marks
its session; once the commit has succeeded, every loop waiting on that table is woken. This is
what makes the embedded worker (`homework serve` on SQLite) as quick as PostgreSQL's NOTIFY,
and what lets the worker's own fan-out wake its dispatcher. A wake-up is a hint: a loop that
misses one still polls, and a loop woken for nothing finds nothing and waits again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

EVENTS = "events"
REMINDERS = "reminders"
DELIVERIES = "webhook_deliveries"
WATCHED = frozenset({EVENTS, REMINDERS, DELIVERIES})

_SESSION_KEY = "homework.wakes"
_waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)


@contextmanager
def waiting_for(table: str, wake: asyncio.Event) -> Iterator[asyncio.Event]:
    """Set `wake` whenever a transaction in this process commits new rows of `table`."""
    _waiting[table].add(wake)
    try:
        yield wake
    finally:
        _waiting[table].discard(wake)


def mark(session: Any, table: str) -> None:
    """For rows written without the unit of work (driver statements): wake on commit."""
    sync_session = getattr(session, "sync_session", session)
    sync_session.info.setdefault(_SESSION_KEY, set()).add(table)


@event.listens_for(Session, "before_flush")
def _note_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    tables: set[str] = {getattr(type(row), "__tablename__", "") for row in session.new}
    for table in tables & WATCHED:
        mark(session, table)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    for table in session.info.pop(_SESSION_KEY, ()):
        wake(table)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_SESSION_KEY, None)


def wake(table: str) -> None:
    """Wake the loops waiting for `table` (PostgreSQL's NOTIFY, heard by the listener)."""
    for waiting in tuple(_waiting[table]):
        waiting.set()


async def first_of(*events: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
    """Wait until one of `events` is set, or `timeout` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
