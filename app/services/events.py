"""The outbox: every change records its event in the same transaction as the change itself.

Payloads are thin by construction: the ids involved and the names of the fields that changed.
There is no place here for free text, so answers, notes and names cannot leak into a webhook.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Event


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
    event = Event(
        tenant_id=tenant_id,
        type=event_type.value,
        client_id=client_id,
        subject={name: value for name, value in ids.items() if value is not None},
        changed_fields=sorted(changed_fields),
    )
    session.add(event)
    return event
