"""The worker's queues as gauges: how much is due and not done, and how long the oldest has
waited. A backlog that grows, or an oldest item that ages, is the signal that the workers are
too few or stuck, whatever each one says of itself.

Each figure is one short read on an index the jobs already use (a count stops at COUNT_CAP, so
a backlog of millions costs no more than one of 100,000). Every worker process measures the
same database: Prometheus should take the max across them, not the sum.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import metrics, wakeups
from app.core.db import Database
from app.models import Event, Reminder, WebhookDelivery, WebhookEndpoint
from app.services.reminders.service import PENDING as REMINDER_PENDING
from app.services.webhooks.dispatch import PENDING as DELIVERY_PENDING
from app.worker.liveness import Liveness

logger = logging.getLogger("homework.worker")
COUNT_CAP = 100_000
LOOP = "measure_backlog"


async def measure(session: AsyncSession, now: datetime) -> None:
    """Read every queue once and set its gauges."""
    queues: dict[str, tuple[int, datetime | None]] = {
        "reminders": await _reminders(session, now),
        "fan_out": await _queue(
            session, Event.occurred_at, Event.fanned_out_at.is_(None), order=Event.id
        ),
        "deliveries": await _queue(
            session,
            WebhookDelivery.next_attempt_at,
            WebhookDelivery.state == DELIVERY_PENDING,
            WebhookDelivery.next_attempt_at <= now,
        ),
    }
    for queue, (count, oldest) in queues.items():
        metrics.BACKLOG.labels(queue).set(count)
        metrics.BACKLOG_OLDEST.labels(queue).set(_age(now, oldest))
    failing, since = (
        await session.execute(
            select(func.count(), func.min(WebhookEndpoint.failing_since)).where(
                WebhookEndpoint.enabled.is_(True), WebhookEndpoint.failing_since.is_not(None)
            )
        )
    ).one()
    metrics.ENDPOINTS_FAILING.set(failing)
    metrics.ENDPOINT_FAILING_LONGEST.set(_age(now, since))


async def _reminders(session: AsyncSession, now: datetime) -> tuple[int, datetime | None]:
    """Per state, as the claim reads them: one range of ix_reminders_state_due_at each."""
    count, oldest = 0, None
    for state in REMINDER_PENDING:
        found, first = await _queue(
            session, Reminder.due_at, Reminder.state == state, Reminder.due_at <= now
        )
        count += found
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return min(count, COUNT_CAP), oldest


async def _queue(
    session: AsyncSession, due: Any, *where: ColumnElement[bool], order: Any = None
) -> tuple[int, datetime | None]:
    """How many rows match (up to COUNT_CAP), and the due time of the first in index order."""
    capped = select(1).where(*where).limit(COUNT_CAP).subquery()
    count = await session.scalar(select(func.count()).select_from(capped)) or 0
    first = select(due).where(*where).order_by(order if order is not None else due).limit(1)
    return count, await session.scalar(first)


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


async def measure_forever(
    database: Database, now: Callable[[], datetime], stop: asyncio.Event, liveness: Liveness
) -> None:
    every = database.settings.metrics_backlog_seconds
    while not stop.is_set():
        liveness.expect(LOOP)
        try:
            async with database.read_sessionmaker() as session:
                await measure(session, now())
        except Exception as exc:  # a gauge left stale for a round; the next one tries again
            logger.warning("backlog not measured", extra={"error": type(exc).__name__})
        liveness.expect(LOOP, every)
        await wakeups.first_of(stop, timeout=every)
    liveness.done(LOOP)
