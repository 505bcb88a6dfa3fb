"""The worker's occurrence jobs: extend open-ended series, open, miss and finish.

Each job handles one batch in the caller's transaction and returns how many rows it handled;
the worker loop owns begin/commit and calls a job again while batches come back full.

Several worker processes run the same jobs at once. A job claims its rows with
`SELECT ... FOR UPDATE SKIP LOCKED LIMIT n`: a row claimed by one worker is invisible to the
others until that worker's transaction ends, so no row is handled twice. If the worker dies
mid-batch, its transaction rolls back and the lock goes with it: the rows are claimed again on
the next round. On SQLite the clause is dropped and BEGIN IMMEDIATE serialises the writers.

Every claim is an index-backed predicate with a LIMIT (see the indexes in
app/models/assignments.py), and every change is one set-based UPDATE per batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Assignment, Client, Occurrence
from app.services.events import EventType, record_event
from app.services.schedules import occurrences as scheduling
from app.services.schedules.occurrences import HORIZON
from app.services.statuses import OccurrenceStatus, ScheduleType

# A series is extended once it has less than this much ahead of it, so that it always has
# about three weeks of occurrences (reminders and the client's "upcoming" list read them).
EXTEND_WHEN_AHEAD_LESS_THAN = HORIZON - timedelta(days=7)

_DONE = (OccurrenceStatus.completed, OccurrenceStatus.partial)
_MISSABLE = (OccurrenceStatus.open, OccurrenceStatus.started)


class AssignmentStatus:
    active = "active"
    completed = "completed"
    expired = "expired"


async def extend_horizons(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """Materialise the next weeks of open-ended (or long) series that are running short."""
    assignments = (
        await session.scalars(
            select(Assignment)
            .where(
                # ix_assignments_status_materialized_until
                Assignment.status == AssignmentStatus.active,
                Assignment.materialized_until < now + EXTEND_WHEN_AHEAD_LESS_THAN,
                Assignment.schedule_type == ScheduleType.recurring,
                Assignment.series_complete.is_(False),
            )
            .order_by(Assignment.materialized_until)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not assignments:
        return 0
    # One query for the whole batch's clients (their time zones), not one per assignment.
    client_ids = {assignment.client_id for assignment in assignments}
    clients = {
        client.id: client
        for client in await session.scalars(select(Client).where(Client.id.in_(client_ids)))
    }
    for assignment in assignments:
        await scheduling.materialize(session, assignment, clients[assignment.client_id], now)
    return len(assignments)


async def open_due(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """Occurrences whose window has opened become `open`."""
    claimed = (
        await session.scalars(
            select(Occurrence.id)
            .where(
                # ix_occurrences_status_opens_at
                Occurrence.status == OccurrenceStatus.upcoming,
                Occurrence.opens_at <= now,
            )
            .order_by(Occurrence.opens_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if claimed:
        await session.execute(
            update(Occurrence)
            .where(Occurrence.id.in_(claimed), Occurrence.status == OccurrenceStatus.upcoming)
            .values(status=OccurrenceStatus.open)
            .execution_options(synchronize_session=False)
        )
    return len(claimed)


async def mark_missed(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """Occurrences whose window closed while still open or started become `missed`, each with
    its `occurrence.missed` event in the same transaction."""
    claimed = (
        await session.execute(
            select(
                Occurrence.id, Occurrence.tenant_id, Occurrence.client_id, Occurrence.assignment_id
            )
            .where(
                # ix_occurrences_status_closes_at
                Occurrence.status.in_(_MISSABLE),
                Occurrence.closes_at <= now,
            )
            .order_by(Occurrence.closes_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not claimed:
        return 0
    await session.execute(
        update(Occurrence)
        .where(Occurrence.id.in_([row.id for row in claimed]), Occurrence.status.in_(_MISSABLE))
        .values(status=OccurrenceStatus.missed)
        .execution_options(synchronize_session=False)
    )
    for row in claimed:
        record_event(
            session,
            row.tenant_id,
            EventType.occurrence_missed,
            client_id=row.client_id,
            assignment_id=row.assignment_id,
            occurrence_id=row.id,
        )
    await session.flush()
    return len(claimed)


async def finish_assignments(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """Active assignments whose series is complete and fully resolved end: `completed` if any
    occurrence was done (fully or partly), else `expired`."""
    of_assignment = Occurrence.assignment_id == Assignment.id
    claimed = (
        await session.execute(
            select(
                Assignment.id,
                Assignment.tenant_id,
                Assignment.client_id,
                exists().where(of_assignment, Occurrence.status.in_(_DONE)).label("done"),
            )
            .where(
                Assignment.status == AssignmentStatus.active,
                Assignment.series_complete.is_(True),
                # A before-the-session assignment with no session booked has no occurrence
                # yet and a complete "series": it is waiting, not finished.
                exists().where(of_assignment),
                ~exists().where(of_assignment, Occurrence.status.in_(OccurrenceStatus.UNRESOLVED)),
            )
            .order_by(Assignment.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not claimed:
        return 0
    completed = [row for row in claimed if row.done]
    expired = [row for row in claimed if not row.done]
    for status, rows in (
        (AssignmentStatus.completed, completed),
        (AssignmentStatus.expired, expired),
    ):
        if rows:
            await session.execute(
                update(Assignment)
                .where(
                    Assignment.id.in_([row.id for row in rows]),
                    Assignment.status == AssignmentStatus.active,
                )
                # A bulk UPDATE bypasses the ORM's version counter: bump it ourselves, so that
                # an ETag read before the assignment ended no longer matches (412, not a
                # silent change to an assignment that has ended).
                .values(status=status, ended_at=now, version=Assignment.version + 1)
                .execution_options(synchronize_session=False)
            )
    for row in completed:
        record_event(
            session,
            row.tenant_id,
            EventType.assignment_completed,
            client_id=row.client_id,
            assignment_id=row.id,
        )
    await session.flush()
    return len(claimed)
