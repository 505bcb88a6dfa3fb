"""Reminders: planned per occurrence (see reminder_planning), fired by the worker.

Firing is two short transactions so that a crashed worker's claims come back: the claim sets a
lease on a batch of due reminders (`FOR UPDATE SKIP LOCKED` where the database has it); the
delivery, for each claimed reminder, checks again that it should still fire and, in one
transaction, marks it sent and records `reminder.due` through the outbox. The update only
succeeds while the lease is ours and the reminder still due, so it fires at most once, however
many workers run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, func, or_, select, update
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
from app.services.events import EventType, record_event
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
LEASE = timedelta(seconds=60)
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


# Firing, for the worker.


async def claim_due(
    session: AsyncSession, now: datetime, batch_size: int, owner: str, lease: timedelta = LEASE
) -> list[str]:
    """Lease a batch of due reminders. A lease that ran out (its worker died) may be taken."""
    free = or_(Reminder.lease_until.is_(None), Reminder.lease_until <= now)
    ids = list(
        (
            await session.scalars(
                select(Reminder.id)
                .where(Reminder.state.in_(PENDING), Reminder.due_at <= now, free)
                .order_by(Reminder.due_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if ids:
        await session.execute(
            update(Reminder)
            .where(Reminder.id.in_(ids))
            .values(lease_owner=owner, lease_until=now + lease, version=Reminder.version + 1)
            .execution_options(synchronize_session=False)
        )
    return ids


@dataclass(frozen=True)
class _Due:
    reminder: Reminder
    occurrence: Occurrence
    assignment: Assignment
    client: Client
    policy_only_if_not_done: bool


async def fire_claimed(
    session: AsyncSession, ids: Sequence[str], owner: str, now: datetime
) -> dict[str, int]:
    """Check each leased reminder once more, then send (event) or skip it."""
    if not ids:
        return {}
    # The daily caps count what was sent: lock the clients (in id order, so that two workers
    # cannot deadlock) so that two workers firing one client's reminders take turns.
    await session.execute(
        select(Client.id)
        .where(Client.id.in_(select(Reminder.client_id).where(Reminder.id.in_(ids))))
        .order_by(Client.id)
        .with_for_update()
    )
    rows = (
        await session.execute(
            select(Reminder, Occurrence, Assignment, Client, TemplateVersion)
            .join(Occurrence, Occurrence.id == Reminder.occurrence_id)
            .join(Assignment, Assignment.id == Reminder.assignment_id)
            .join(Client, Client.id == Reminder.client_id)
            .join(TemplateVersion, TemplateVersion.id == Assignment.template_version_id)
            .where(
                Reminder.id.in_(ids),
                Reminder.lease_owner == owner,
                Reminder.state.in_(PENDING),
            )
            .order_by(Reminder.due_at)
            # Locked while we decide: a worker whose lease ran out cannot fire what another
            # has since claimed (the lease owner is checked again once the lock is ours).
            .with_for_update(of=Reminder)
        )
    ).all()
    sent_today = await _sent_per_day(session, {(row[3].tenant_id, row[3].id) for row in rows}, now)
    outcome: dict[str, int] = {}
    for reminder, occurrence, assignment, client, version in rows:
        verdict = _verdict(reminder, occurrence, assignment, client, version, sent_today, now)
        outcome[verdict] = outcome.get(verdict, 0) + 1
        if verdict == "sent":
            day = reminder.local_due[:10]
            for key in ((client.id, day), (assignment.id, day)):
                sent_today[key] = sent_today.get(key, 0) + 1
            reminder.state, reminder.sent_at, reminder.reason = "sent", now, None
            record_event(
                session,
                reminder.tenant_id,
                EventType.reminder_due,
                client_id=client.id,
                reminder_id=reminder.id,
                occurrence_id=occurrence.id,
                assignment_id=assignment.id,
                template_kind=assignment.kind,
                local_due_at=reminder.local_due,
                time_zone=reminder.time_zone,
            )
        else:
            state, _, reason = verdict.partition(":")
            reminder.state, reminder.reason = state, reason
        reminder.lease_owner = reminder.lease_until = None
    await session.flush()
    return outcome


def _verdict(
    reminder: Reminder,
    occurrence: Occurrence,
    assignment: Assignment,
    client: Client,
    version: TemplateVersion,
    sent_today: dict[tuple[str, str], int],
    now: datetime,
) -> str:
    if assignment.status == "cancelled" or occurrence.status == OccurrenceStatus.cancelled:
        return "cancelled:cancelled"
    if assignment.status != "active":  # completed or expired: every occurrence is resolved
        return "cancelled:resolved"
    if (
        occurrence.status not in OccurrenceStatus.UNRESOLVED
        and policy_of(assignment, version).only_if_not_done
    ):
        return "cancelled:resolved"
    if now >= occurrence.closes_at:
        return "skipped:window_closed"
    if client.reminders_muted:
        return "skipped:muted"
    day = reminder.local_due[:10]
    cap = client.max_reminders_per_day
    if cap is not None and sent_today.get((client.id, day), 0) >= cap:
        return "skipped:daily_cap"
    # Planning caps each occurrence's reminders; an assignment due several times a day is
    # capped here, across its occurrences.
    cap = policy_of(assignment, version).max_per_day
    if cap is not None and sent_today.get((assignment.id, day), 0) >= cap:
        return "skipped:assignment_daily_cap"
    return "sent"


async def _sent_per_day(
    session: AsyncSession, clients: set[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], int]:
    """Reminders already sent, around now, per local day: by (client id, day) and by
    (assignment id, day), for the two daily caps. One that was sent and then dismissed was
    still sent (one sent and then snoozed counts again when it fires again)."""
    if not clients:
        return {}
    day = func.substr(Reminder.local_due, 1, 10)
    rows = await session.execute(
        select(Reminder.client_id, Reminder.assignment_id, day, func.count())
        .where(
            # With the tenant, a range of ix_reminders_tenant_id_client_id_due_at per client,
            # rather than every reminder sent in two days.
            Reminder.tenant_id.in_({tenant_id for tenant_id, _ in clients}),
            Reminder.client_id.in_({client_id for _, client_id in clients}),
            Reminder.state.in_(("sent", "dismissed")),
            Reminder.sent_at.is_not(None),
            Reminder.due_at > now - timedelta(days=2),
            Reminder.due_at <= now,  # what was sent was due; the rest of the range is ahead
        )
        .group_by(Reminder.client_id, Reminder.assignment_id, day)
    )
    counts: dict[tuple[str, str], int] = {}
    for client_id, assignment_id, local_day, count in rows.all():
        for key in ((client_id, local_day), (assignment_id, local_day)):
            counts[key] = counts.get(key, 0) + count
    return counts


# The client's own actions.


def visible_reminders(principal: Principal) -> Select[Reminder]:
    return select(Reminder).where(
        Reminder.tenant_id == principal.tenant_id,
        client_visibility(principal, Reminder.client_id),
    )


async def get(session: AsyncSession, principal: Principal, reminder_id: str) -> Reminder:
    reminder = await session.scalar(visible_reminders(principal).where(Reminder.id == reminder_id))
    if reminder is None:
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
