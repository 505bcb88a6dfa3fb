"""What an assignment would be before it is made: its occurrences and their reminders over the
next days, worked out by the same code and checks as creating it, with nothing written but the
audit trail's note that the client's schedule was read.

A clinician's app shows it before saving ("every evening at 20:00, reminded at 19:00, none in
quiet hours"); what it shows is what `POST /v1/assignments` then creates, for the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import Principal
from app.models import Assignment, Occurrence
from app.schemas.assignments import AssignmentCreate
from app.services import assignments, audit
from app.services.audit import Action
from app.services.reminders import service as reminders
from app.services.reminders.planning import PlannedReminder, Window, plan
from app.services.schedules import occurrences as scheduling


@dataclass(frozen=True)
class PreviewedOccurrence:
    occurrence: Occurrence  # never added to a session
    reminders: list[PlannedReminder]


@dataclass(frozen=True)
class Preview:
    assignment: Assignment  # never added to a session
    time_zone: str
    as_of: datetime
    until: datetime
    occurrences: list[PreviewedOccurrence]


async def preview(
    session: AsyncSession, principal: Principal, body: AssignmentCreate, now: datetime, days: int
) -> Preview:
    assignment, client, version = await assignments.draft(session, principal, body, now)
    until = now + timedelta(days=days)
    policy, prefs = reminders.policy_of(assignment, version), reminders.preferences_of(client)
    previewed = [
        PreviewedOccurrence(
            occurrence,
            # As `schedule_for` keeps them: only those still ahead.
            [
                reminder
                for reminder in plan(
                    policy,
                    prefs,
                    Window(occurrence.due_at, occurrence.opens_at, occurrence.closes_at),
                )
                if reminder.due_at > now
            ],
        )
        for occurrence in scheduling.expected(assignment, client, now, until)
    ]
    await audit.record(session, principal, Action.read, "assignment_preview", [(client.id, None)])
    return Preview(assignment, client.time_zone, now, until, previewed)
