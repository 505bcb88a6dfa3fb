"""The outbox: every change records its event in the same transaction as the change itself.

Payloads are thin by construction: the ids involved and the names of the fields that changed.
There is no place here for free text, so answers, notes and names cannot leak into a webhook.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import trace_context, wakeups
from app.core.driver import Statement, values_of
from app.core.ids import new_id
from app.models import Event
from app.models.base import utcnow
from app.models.tables import EVENTS


class EventType(StrEnum):
    assignment_created = "assignment.created"
    assignment_updated = "assignment.updated"
    assignment_cancelled = "assignment.cancelled"
    assignment_completed = "assignment.completed"
    occurrence_missed = "occurrence.missed"
    completion_created = "completion.created"
    completion_updated = "completion.updated"
    completion_reviewed = "completion.reviewed"
    completion_distress_flagged = "completion.distress_flagged"
    adjustment_proposed = "adjustment.proposed"
    adjustment_resolved = "adjustment.resolved"
    reminder_due = "reminder.due"
    client_erased = "client.erased"


def new_event(
    tenant_id: str,
    event_type: EventType,
    *,
    client_id: str | None,
    changed_fields: Iterable[str] = (),
    **ids: str | None,
) -> Event:
    """An event, not yet in any session: `record_event` adds it, `write_events` inserts it."""
    return Event(
        id=new_id("evt"),
        tenant_id=tenant_id,
        type=event_type.value,
        occurred_at=utcnow(),
        client_id=client_id,
        subject={name: value for name, value in ids.items() if value is not None},
        changed_fields=sorted(changed_fields),
        traceparent=trace_context.origin(),
    )


def record_event(
    session: AsyncSession,
    tenant_id: str,
    event_type: EventType,
    *,
    client_id: str | None,
    changed_fields: Iterable[str] = (),
    **ids: str | None,
) -> Event:
    """Add an event to the session; it is written with the rest of the transaction."""
    event = new_event(
        tenant_id, event_type, client_id=client_id, changed_fields=changed_fields, **ids
    )
    session.add(event)
    return event


_INSERT = Statement(insert(EVENTS))


async def write_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """Insert events now, in the session's transaction, without the unit of work (the
    completion POST's path)."""
    await _INSERT.execute_many(session, [values_of(event, EVENTS) for event in events])
    wakeups.mark(session, wakeups.EVENTS)
