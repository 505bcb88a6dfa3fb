"""Occurrences, and their reminders, from schedules: when each piece of homework comes due.

A schedule is one of: `once` (a due time), `recurring` (an RRULE in local wall-clock time from a
local start) or `before_next_session` (due at the client's next session). Each occurrence has a
completion window: it opens `opens_before_minutes` before its due time (a one-off opens when
the assignment starts) and closes `grace_minutes` after it.

Occurrences are materialised up to a horizon; the worker extends open-ended series. When the
time zone, the rule or an accepted adjustment changes, only occurrences that have not opened
yet are recomputed: what the client could already see, and everything past, never moves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Assignment, Client, Occurrence
from app.services.reminders import service as reminders
from app.services.schedules.recurrence import (
    MAX_PER_HORIZON,
    Recurrence,
    expand_between,
    first_instant,
    local_to_utc,
)
from app.services.statuses import OccurrenceStatus, ScheduleType

HORIZON = timedelta(days=28)
FAR_FUTURE = timedelta(days=3650)
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


def local_label(instant: datetime, time_zone: str) -> str:
    return instant.astimezone(ZoneInfo(time_zone)).strftime(LOCAL_FORMAT)


def upcoming_session(client: Client, now: datetime) -> datetime | None:
    """The client's next session if it is still ahead: one cleared, or set in the past, is no
    booking, and before-the-session homework waits for the next one."""
    at = client.next_session_at
    return at if at is not None and at > now else None


def initial_status(opens_at: datetime, now: datetime) -> str:
    return OccurrenceStatus.open if opens_at <= now else OccurrenceStatus.upcoming


def _occurrence(
    assignment: Assignment,
    ordinal: int,
    due_at: datetime,
    opens_at: datetime,
    time_zone: str,
    now: datetime,
) -> Occurrence:
    return Occurrence(
        tenant_id=assignment.tenant_id,
        assignment_id=assignment.id,
        client_id=assignment.client_id,
        ordinal=ordinal,
        due_at=due_at,
        opens_at=opens_at,
        closes_at=due_at + timedelta(minutes=assignment.grace_minutes),
        local_due=local_label(due_at, time_zone),
        time_zone=time_zone,
        status=initial_status(opens_at, now),
    )


async def materialize(
    session: AsyncSession, assignment: Assignment, client: Client, now: datetime
) -> list[Occurrence]:
    """Create the occurrences this assignment lacks up to the horizon; returns the new ones."""
    if assignment.schedule_type != ScheduleType.recurring:
        return await _materialize_single(session, assignment, client, now)
    horizon = now + HORIZON
    taken = set(
        (
            await session.scalars(
                select(Occurrence.ordinal).where(Occurrence.assignment_id == assignment.id)
            )
        ).all()
    )
    created = [
        occurrence
        for occurrence in _series_between(assignment, client, now, horizon)
        if occurrence.ordinal not in taken
    ]
    session.add_all(created)
    await session.flush()
    await reminders.schedule_for(session, assignment, client, created, now)
    assignment.materialized_until = horizon
    remaining = expand_between(
        _rule(assignment),
        _start_local(assignment),
        client.time_zone,
        horizon,
        horizon + FAR_FUTURE,
        limit=1,
    )
    assignment.series_complete = not remaining
    await session.flush()
    return created


def expected(
    assignment: Assignment, client: Client, now: datetime, until: datetime
) -> list[Occurrence]:
    """The occurrences a new assignment would be given, as `materialize` makes them, but not
    added to any session: those of a series due before `until`, or its one-off."""
    if assignment.schedule_type == ScheduleType.recurring:
        return _series_between(assignment, client, now, until)
    if assignment.due_at is None:
        return []
    return [
        _occurrence(assignment, 0, assignment.due_at, assignment.starts_at, client.time_zone, now)
    ]


def _rule(assignment: Assignment) -> Recurrence:
    assert assignment.rrule is not None
    return Recurrence.parse(assignment.rrule)


def _start_local(assignment: Assignment) -> datetime:
    assert assignment.start_local is not None
    return datetime.strptime(assignment.start_local, LOCAL_FORMAT)


def _series_between(
    assignment: Assignment, client: Client, now: datetime, until: datetime
) -> list[Occurrence]:
    """The series' occurrences from where it was materialised to `until`, new objects."""
    grace = timedelta(minutes=assignment.grace_minutes)
    opens_before = timedelta(minutes=assignment.opens_before_minutes)
    # Never from further back than the oldest due time whose window is still open: counted
    # from a start years ago, the expansion's limit would be spent on the past (and the horizon
    # recorded as reached with nothing created). Ordinals still count from the series start.
    window_start = max(assignment.materialized_until or assignment.starts_at, now - grace)
    expansion = expand_between(
        _rule(assignment),
        _start_local(assignment),
        client.time_zone,
        window_start,
        until,
        limit=MAX_PER_HORIZON,
    )
    return [
        _occurrence(
            assignment,
            assignment.ordinal_base + series_ordinal,
            due_at,
            max(due_at - opens_before, assignment.starts_at),
            client.time_zone,
            now,
        )
        for series_ordinal, due_at in expansion
        # An occurrence whose window closed before it could be seen is never created.
        if due_at + grace > now
    ]


async def _materialize_single(
    session: AsyncSession, assignment: Assignment, client: Client, now: datetime
) -> list[Occurrence]:
    """A one-off (or before-the-session) occurrence: created once, then moved with its due time
    for as long as it is unresolved."""
    assignment.series_complete = True
    assignment.materialized_until = assignment.due_at
    if assignment.due_at is None:
        # Before the session, with none booked: waiting. An occurrence not yet done goes, and
        # its reminders with it (the foreign key cascades); the next booking brings it back.
        await session.execute(
            delete(Occurrence).where(
                Occurrence.assignment_id == assignment.id,
                Occurrence.status.in_(OccurrenceStatus.UNRESOLVED),
            )
        )
        return []
    existing = await session.scalar(
        select(Occurrence).where(Occurrence.assignment_id == assignment.id)
    )
    if existing is None:
        (occurrence,) = expected(assignment, client, now, assignment.due_at)
        session.add(occurrence)
        await session.flush()
        await reminders.schedule_for(session, assignment, client, [occurrence], now)
        return [occurrence]
    if existing.status in OccurrenceStatus.UNRESOLVED and existing.due_at != assignment.due_at:
        existing.due_at = assignment.due_at
        existing.closes_at = assignment.due_at + timedelta(minutes=assignment.grace_minutes)
        existing.local_due = local_label(assignment.due_at, client.time_zone)
        existing.time_zone = client.time_zone
        await session.flush()
        await reminders.schedule_for(session, assignment, client, [existing], now)
    return []


async def recompute_future(
    session: AsyncSession,
    assignment: Assignment,
    client: Client,
    now: datetime,
    *,
    new_series: bool = False,
) -> list[Occurrence]:
    """Replace the occurrences that have not opened yet, as the schedule now says.

    The same series in a new time zone keeps its numbering (and its COUNT). A new rule is a new
    series from now on: its first occurrence comes after those kept, and its COUNT counts anew.
    """
    await session.execute(
        delete(Occurrence).where(
            Occurrence.assignment_id == assignment.id,
            Occurrence.status == OccurrenceStatus.upcoming,
            Occurrence.opens_at > now,
        )
    )
    if assignment.schedule_type == ScheduleType.recurring:
        if new_series:
            await _start_new_series(session, assignment, client, now)
        assignment.materialized_until = max(now, assignment.starts_at)
    return await materialize(session, assignment, client, now)


async def _start_new_series(
    session: AsyncSession, assignment: Assignment, client: Client, now: datetime
) -> None:
    kept = await session.scalar(
        select(func.max(Occurrence.ordinal)).where(Occurrence.assignment_id == assignment.id)
    )
    assignment.ordinal_base = 0 if kept is None else kept + 1
    local_now = now.astimezone(ZoneInfo(client.time_zone)).replace(
        tzinfo=None, second=0, microsecond=0
    )
    start = max(_start_local(assignment), local_now)
    assignment.start_local = start.strftime(LOCAL_FORMAT)
    assignment.starts_at = series_starts_at(_rule(assignment), start, client.time_zone, now)


def series_starts_at(
    rule: Recurrence, start_local: datetime, time_zone: str, now: datetime
) -> datetime:
    """When a series' assignment starts: now, or its start if that is earlier, or its first
    occurrence if that is earlier still (a start in a spring-forward gap lands later than a
    first occurrence just after the gap), so that no occurrence falls before it."""
    first = first_instant(rule, start_local, time_zone)
    starts = min(now, local_to_utc(start_local, time_zone))
    return starts if first is None else min(starts, first)
