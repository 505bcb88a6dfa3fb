"""Reminders as the API keeps them: planned per occurrence (app.services.reminders.planning)
whenever an assignment, its occurrences or the client's preferences change, cancelled once the
work is done, and snoozed or dismissed by the client. The worker fires them
(app.services.reminders.firing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import Statement, param
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.pagination import page_of, paginate
from app.core.security import Principal
from app.models import Assignment, Client, Occurrence, Reminder, TemplateVersion
from app.models.base import utcnow
from app.models.tables import REMINDERS
from app.services import audit
from app.services.access import client_visibility
from app.services.audit import Action
from app.services.reminders.planning import (
    DEFAULT_LEAD_MINUTES,
    LOCAL_FORMAT,
    PlannedReminder,
    Preferences,
    ReminderPolicy,
    Window,
    plan,
    shift_out_of_quiet_hours,
)
from app.services.statuses import OccurrenceStatus

PENDING = ("scheduled", "snoozed")
MAX_SNOOZE = timedelta(hours=24)
MIN_SNOOZE = timedelta(minutes=1)


def policy_of(assignment: Assignment, version: TemplateVersion) -> ReminderPolicy:
    """The assignment's own policy, or the template's defaults: its local times of day where
    it has them (a daily log at 20:00), else an hour before each due time."""
    raw: dict[str, Any] = assignment.reminder_policy or {}
    local_times = tuple(raw.get("local_times") or ())
    lead_minutes = tuple(raw.get("lead_minutes") or ())
    # A policy that names no times (`{"max_per_day": 1}`, `{"only_if_not_done": false}`)
    # changes the rest and keeps the defaults' times; `enabled: false` is how to turn them off.
    if not local_times and not lead_minutes:
        local_times = tuple(version.default_reminder_local_times)
        lead_minutes = () if local_times else DEFAULT_LEAD_MINUTES
    return ReminderPolicy(
        local_times=local_times,
        lead_minutes=lead_minutes,
        only_if_not_done=raw.get("only_if_not_done", True),
        max_per_day=raw.get("max_per_day"),
        enabled=raw.get("enabled", True),
    )


def preferences_of(client: Client) -> Preferences:
    return Preferences(
        time_zone=client.time_zone,
        quiet_start=client.quiet_hours_start,
        quiet_end=client.quiet_hours_end,
        muted=client.reminders_muted,
    )


async def schedule_for(
    session: AsyncSession,
    assignment: Assignment,
    client: Client,
    occurrences: Iterable[Occurrence],
    now: datetime,
) -> None:
    """(Re)plan the future reminders of these occurrences. Sent, snoozed and dismissed ones are
    history or the client's own choice, and stay."""
    targets = [o for o in occurrences if o.status in OccurrenceStatus.UNRESOLVED]
    if not targets:
        return
    await session.execute(
        delete(Reminder).where(
            Reminder.occurrence_id.in_([o.id for o in targets]),
            Reminder.state.in_(("scheduled", "skipped")),
            Reminder.due_at > now,
        )
    )
    version = await session.get(TemplateVersion, assignment.template_version_id)
    assert version is not None
    policy, prefs = policy_of(assignment, version), preferences_of(client)
    dismissed, taken = await _kept(session, [o.id for o in targets])
    rows = [
        Reminder(
            tenant_id=assignment.tenant_id,
            client_id=client.id,
            assignment_id=assignment.id,
            occurrence_id=occurrence.id,
            due_at=planned.due_at,
            local_due=planned.local_due,
            time_zone=client.time_zone,
            state=planned.state,
            reason=planned.reason,
        )
        for occurrence in targets
        if occurrence.id not in dismissed
        for planned in _untaken(
            plan(
                policy, prefs, Window(occurrence.due_at, occurrence.opens_at, occurrence.closes_at)
            ),
            taken.get(occurrence.id, 0),
        )
        if planned.due_at > now
    ]
    session.add_all(rows)
    await session.flush()
    if client.reminders_muted:
        # A snooze ahead is muted too (left `snoozed`, the app would show it as coming); it
        # keeps its row, and on unmute goes like any skipped reminder ahead: replanned.
        await session.execute(
            update(Reminder)
            .where(
                Reminder.occurrence_id.in_([o.id for o in targets]),
                Reminder.state == "snoozed",
                Reminder.due_at > now,
            )
            .values(state="skipped", reason="muted", version=Reminder.version + 1)
            .execution_options(synchronize_session=False)
        )


async def _kept(
    session: AsyncSession, occurrence_ids: list[str]
) -> tuple[set[str], dict[str, int]]:
    """The occurrences the client dismissed, and how many reminders of each were already sent
    or snoozed (each took one of the planned slots: a replan must not send it again)."""
    rows = await session.execute(
        select(Reminder.occurrence_id, Reminder.state).where(
            Reminder.occurrence_id.in_(occurrence_ids),
            Reminder.state.in_(("sent", "snoozed", "dismissed")),
        )
    )
    dismissed: set[str] = set()
    taken: dict[str, int] = {}
    for occurrence_id, state in rows.all():
        if state == "dismissed":
            dismissed.add(occurrence_id)
        else:
            taken[occurrence_id] = taken.get(occurrence_id, 0) + 1
    return dismissed, taken


def _untaken(planned: list[PlannedReminder], taken: int) -> list[PlannedReminder]:
    """The plan without its first `taken` slots that would fire (scheduled, or muted for now):
    reminders fire in due order, so those are the ones already sent or snoozed."""
    kept = []
    for reminder in planned:
        if taken and (reminder.state == "scheduled" or reminder.reason == "muted"):
            taken -= 1
            continue
        kept.append(reminder)
    return kept


async def resync_assignment(session: AsyncSession, assignment: Assignment, now: datetime) -> None:
    client = await session.get(Client, assignment.client_id)
    assert client is not None
    occurrences = await session.scalars(
        select(Occurrence).where(
            Occurrence.assignment_id == assignment.id,
            Occurrence.status.in_(OccurrenceStatus.UNRESOLVED),
            Occurrence.closes_at > now,
        )
    )
    await schedule_for(session, assignment, client, list(occurrences), now)


async def resync_client(session: AsyncSession, client: Client, now: datetime) -> None:
    """After a change of zone, quiet hours or mute: replan everything still ahead."""
    active = await session.scalars(
        select(Assignment).where(Assignment.client_id == client.id, Assignment.status == "active")
    )
    for assignment in active.all():
        await resync_assignment(session, assignment, now)


def _cancel_pending_of(column: Any) -> Statement:
    return Statement(
        REMINDERS.update()
        .where(column == param("of"), REMINDERS.c.state.in_(PENDING))
        .values(
            state="cancelled",
            reason=param("reason"),
            version=REMINDERS.c.version + 1,
            updated_at=param("now"),
        )
    )


_CANCEL_PENDING_OF_OCCURRENCE = _cancel_pending_of(REMINDERS.c.occurrence_id)
_CANCEL_PENDING_OF_ASSIGNMENT = _cancel_pending_of(REMINDERS.c.assignment_id)


async def cancel_pending(
    session: AsyncSession,
    reason: str,
    *,
    occurrence_id: str | None = None,
    assignment_id: str | None = None,
) -> None:
    if occurrence_id is not None:
        statement, of = _CANCEL_PENDING_OF_OCCURRENCE, occurrence_id
    else:
        assert assignment_id is not None
        statement, of = _CANCEL_PENDING_OF_ASSIGNMENT, assignment_id
    await statement.execute_many(session, [{"of": of, "reason": reason, "now": utcnow()}])


# The client's own actions.


def visible_reminders(principal: Principal) -> Select[Reminder]:
    return select(Reminder).where(
        Reminder.tenant_id == principal.tenant_id,
        client_visibility(principal, Reminder.client_id),
    )


async def get(session: AsyncSession, principal: Principal, reminder_id: str) -> Reminder:
    reminder = await session.scalar(visible_reminders(principal).where(Reminder.id == reminder_id))
    if reminder is None:
        await audit.record_refusal_if_hidden(
            session, principal, Action.update, "reminder", reminder_id
        )
        raise NotFound("No such reminder.")
    return reminder


@dataclass(frozen=True)
class ReminderFilters:
    client_id: str | None = None
    occurrence_id: str | None = None
    state: str | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None


async def search(
    session: AsyncSession,
    principal: Principal,
    filters: ReminderFilters,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Reminder], str | None]:
    statement = visible_reminders(principal)
    for column, value in (
        (Reminder.client_id, filters.client_id),
        (Reminder.occurrence_id, filters.occurrence_id),
        (Reminder.state, filters.state),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if filters.due_from is not None:
        statement = statement.where(Reminder.due_at >= filters.due_from)
    if filters.due_to is not None:
        statement = statement.where(Reminder.due_at < filters.due_to)
    rows = (await session.scalars(paginate(statement, Reminder.id, limit, cursor))).all()
    reminders, next_cursor = page_of(rows, limit, lambda r: r.id)
    await audit.record(
        session, principal, Action.list, "reminder", [(r.client_id, r.id) for r in reminders]
    )
    return reminders, next_cursor


async def snooze(
    session: AsyncSession,
    principal: Principal,
    reminder: Reminder,
    *,
    minutes: int | None,
    until: datetime | None,
    now: datetime,
) -> Reminder:
    if reminder.state not in ("scheduled", "sent", "snoozed"):
        raise Conflict(f"A {reminder.state} reminder cannot be snoozed.")
    # In UTC like every other instant we return, whatever offset `until` was given in.
    target = until.astimezone(UTC) if until is not None else now + timedelta(minutes=minutes or 0)
    if not now + MIN_SNOOZE <= target <= now + MAX_SNOOZE:
        field = "until" if until is not None else "minutes"
        raise ValidationFailed.for_field(
            "body", [field], "a snooze lasts from 1 minute to 24 hours", "out_of_range"
        )
    occurrence = await session.get(Occurrence, reminder.occurrence_id)
    client = await session.get(Client, reminder.client_id)
    assert occurrence is not None and client is not None
    target = shift_out_of_quiet_hours(target, preferences_of(client))
    if target >= occurrence.closes_at:
        raise ValidationFailed.for_field(
            "body",
            ["until" if until is not None else "minutes"],
            "that is after the homework's window closes",
            "after_window",
        )
    reminder.state, reminder.due_at, reminder.reason = "snoozed", target, None
    reminder.local_due = target.astimezone(ZoneInfo(client.time_zone)).strftime(LOCAL_FORMAT)
    reminder.time_zone = client.time_zone
    reminder.lease_owner = reminder.lease_until = None
    await session.flush()
    await audit.record(
        session, principal, Action.update, "reminder", [(reminder.client_id, reminder.id)]
    )
    return reminder


async def dismiss(session: AsyncSession, principal: Principal, reminder: Reminder) -> Reminder:
    """No more nudges about this occurrence: this reminder and any still pending for it."""
    await session.execute(
        update(Reminder)
        .where(
            Reminder.occurrence_id == reminder.occurrence_id,
            or_(Reminder.id == reminder.id, Reminder.state.in_(PENDING)),
            Reminder.state != "dismissed",
        )
        .values(state="dismissed", reason="dismissed", version=Reminder.version + 1)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(reminder)
    await audit.record(
        session, principal, Action.update, "reminder", [(reminder.client_id, reminder.id)]
    )
    return reminder
