from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import Reminder
from app.schemas.common import Instant
from app.schemas.reminders import ReminderOut, ReminderState, SnoozeRequest
from app.services.reminders import service as reminders

router = APIRouter(prefix="/v1/reminders", tags=["reminders"], route_class=AppRoute)
ReminderId = Annotated[str, Path(max_length=40)]


def reminder_out(reminder: Reminder) -> ReminderOut:
    return ReminderOut.model_validate(reminder, from_attributes=True)


@router.get(
    "",
    operation_id="list_reminders",
    summary="Reminders: a client's own, a clinician's care team's, or the tenant's",
    description="Filter by client, occurrence, state or due time; newest first. `local_due` is "
    "the reminder's time on the client's clock, and `reason` says why one moved or did not "
    "fire.",
    responses=problem_responses(401, 403, 422),
)
async def list_reminders(
    session: SessionDep,
    principal: Annotated[Principal, require("reminders", "s")],
    client_id: Annotated[str | None, Query(max_length=40)] = None,
    occurrence_id: Annotated[str | None, Query(max_length=40)] = None,
    state: ReminderState | None = None,
    due_from: Annotated[Instant | None, Query(description="Due at or after.")] = None,
    due_to: Annotated[Instant | None, Query(description="Due before.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ReminderOut]:
    filters = reminders.ReminderFilters(client_id, occurrence_id, state, due_from, due_to)
    items, next_cursor = await reminders.search(
        session, principal, filters, limit=limit, cursor=cursor
    )
    return Page(data=[reminder_out(r) for r in items], next_cursor=next_cursor)


@router.post(
    "/{reminder_id}/snooze",
    operation_id="snooze_reminder",
    summary="Remind again later",
    description="For the client (and your backend); a clinician gets 403. Only a scheduled, "
    "sent or snoozed reminder can be snoozed (409 otherwise). The new time must be 1 minute to "
    "24 hours ahead and before the homework's window closes (422); a time in quiet hours moves "
    "to their end.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def snooze_reminder(
    reminder_id: ReminderId,
    body: SnoozeRequest,
    session: SessionDep,
    principal: Annotated[Principal, require("reminders", "u")],
    now: NowDep,
) -> ReminderOut:
    reminder = await reminders.get(session, principal, reminder_id)
    reminder = await reminders.snooze(
        session, principal, reminder, minutes=body.minutes, until=body.until, now=now
    )
    return reminder_out(reminder)


@router.post(
    "/{reminder_id}/dismiss",
    operation_id="dismiss_reminder",
    summary="No more reminders about this piece of homework",
    description="Dismisses this reminder and any still pending for the same occurrence.",
    responses=problem_responses(401, 403, 404),
)
async def dismiss_reminder(
    reminder_id: ReminderId,
    session: SessionDep,
    principal: Annotated[Principal, require("reminders", "u")],
) -> ReminderOut:
    reminder = await reminders.get(session, principal, reminder_id)
    return reminder_out(await reminders.dismiss(session, principal, reminder))
