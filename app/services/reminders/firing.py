"""Firing reminders, for the worker.

Two short transactions so that a crashed worker's claims come back: the claim sets a lease on a
batch of due reminders (`FOR UPDATE SKIP LOCKED` where the database has it), from the clock
read at the claim; then, for each claimed reminder, the firing checks again that it should
still fire and, in one transaction, marks it sent and records `reminder.due` through the
outbox. The update only succeeds while the lease is ours and the reminder still due, so it
fires at most once, however many workers run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Assignment, Client, Occurrence, Reminder, TemplateVersion
from app.services.events import EventType, record_event
from app.services.reminders.service import PENDING, policy_of
from app.services.statuses import OccurrenceStatus

LEASE = timedelta(seconds=60)


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
    session: AsyncSession,
    ids: Sequence[str],
    owner: str,
    now: datetime,
    *,
    lateness: list[float] | None = None,
) -> dict[str, int]:
    """Check each leased reminder once more, then send (event) or skip it. `lateness` gets,
    for each one sent, how many seconds after its due time that was."""
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
            if lateness is not None:
                lateness.append(max(0.0, (now - reminder.due_at).total_seconds()))
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
    if now < occurrence.opens_at:  # never before the client can act on it
        return "skipped:window_not_open"
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


async def next_due_at(session: AsyncSession, now: datetime) -> datetime | None:
    """When the next reminder not due yet comes due: the worker sleeps until then."""
    # One min() per state: each the first entry of a range of ix_reminders_state_due_at,
    # where `state IN (...)` would read every planned reminder ahead.
    firsts = (
        await session.execute(
            select(
                *(
                    select(func.min(Reminder.due_at))
                    .where(Reminder.state == state, Reminder.due_at > now)
                    .scalar_subquery()
                    for state in PENDING
                )
            )
        )
    ).one()
    return min((first for first in firsts if first is not None), default=None)
