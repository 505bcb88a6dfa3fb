"""How long webhook history is kept: events, their deliveries and attempts, 30 days."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Event, WebhookAttempt, WebhookDelivery

RETENTION = timedelta(days=30)


async def prune(
    session: AsyncSession, now: datetime, batch_size: int, keep: timedelta = RETENTION
) -> int:
    """Events sent more than `keep` ago (with their deliveries and attempts), and attempts
    older than `keep`, go.

    An event's age is counted from its fan-out, on the worker's own clock like `now`: an event
    that has not been sent yet (a worker stopped for weeks, a backlog) is never removed
    unsent, nor one with a delivery still pending (a late replay)."""
    cutoff = now - keep
    pending = exists().where(
        WebhookDelivery.event_id == Event.id, WebhookDelivery.state == "pending"
    )
    old_events = list(
        (
            await session.scalars(
                select(Event.id).where(Event.fanned_out_at < cutoff, ~pending).limit(batch_size)
            )
        ).all()
    )
    old_attempts = list(
        (
            await session.scalars(
                select(WebhookAttempt.id)
                .where(WebhookAttempt.attempted_at < cutoff)
                .limit(batch_size)
            )
        ).all()
    )
    if old_attempts:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.id.in_(old_attempts)))
    if old_events:
        await session.execute(delete(Event).where(Event.id.in_(old_events)))
    return max(len(old_events), len(old_attempts))
