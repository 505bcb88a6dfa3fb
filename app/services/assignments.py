"""Assignments: homework given to one client, made personal, scheduled in their time."""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import Statement, param
from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.core.pagination import decode_cursor, page_of
from app.core.scopes import Context
from app.core.security import Principal
from app.models import (
    Assignment,
    CareTeamMember,
    Client,
    Occurrence,
    Template,
    TemplateVersion,
)
from app.models.tables import ASSIGNMENTS, OCCURRENCES
from app.schemas.assignments import (
    AssignmentCreate,
    AssignmentUpdate,
    BeforeNextSessionSchedule,
    OnceSchedule,
    RecurringSchedule,
    Window,
)
from app.services import audit, templates
from app.services.access import (
    assignment_rows_visible_to,
    visible_assignments,
    visible_clients,
)
from app.services.audit import Action
from app.services.events import EventType, record_event
from app.services.reminders import service as reminders
from app.services.schedules import occurrences as scheduling
from app.services.schedules.occurrences import HORIZON, LOCAL_FORMAT
from app.services.schedules.recurrence import (
    Recurrence,
    RecurrenceError,
    expand,
    local_to_utc,
    refusal,
)
from app.services.statuses import OccurrenceStatus, ScheduleType

Schedule = OnceSchedule | RecurringSchedule | BeforeNextSessionSchedule
# A series is numbered, and its COUNT counted, from its start: every expansion walks its past,
# which is bounded here (a daily plan may have started 50 years ago, a dense one not 30).
MAX_PAST = 20_000


@dataclass(frozen=True)
class AssignmentFilters:
    client_id: str | None = None
    status: str | None = None
    kind: str | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None


def _clinical_side_only(principal: Principal, what: str) -> None:
    if principal.is_client:
        raise Forbidden(f"A client cannot {what}; propose an adjustment instead.")


async def _client(session: AsyncSession, principal: Principal, client_id: str) -> Client:
    client = await session.scalar(visible_clients(principal).where(Client.id == client_id))
    if client is None:
        await audit.record_refusal_if_hidden(session, principal, Action.create, "client", client_id)
        raise NotFound("No such client.")
    return client


async def _assigning_clinician(
    session: AsyncSession, principal: Principal, client: Client, clinician_id: str | None
) -> str:
    if principal.is_clinician:
        if clinician_id not in (None, principal.subject_id):
            raise ValidationFailed.for_field(
                "body", ["clinician_id"], "a clinician assigns as themself", "not_self"
            )
        return principal.subject_id
    if clinician_id is None:
        raise ValidationFailed.for_field(
            "body", ["clinician_id"], "a system caller assigns on a clinician's behalf", "missing"
        )
    on_team = await session.scalar(
        select(
            exists().where(
                CareTeamMember.client_id == client.id, CareTeamMember.clinician_id == clinician_id
            )
        )
    )
    if not on_team:
        raise ValidationFailed.for_field(
            "body", ["clinician_id"], "is not on this client's care team", "not_on_care_team"
        )
    return clinician_id


def _instant(value: datetime, time_zone: str) -> datetime:
    """An instant as given, or a local wall-clock time in the client's zone."""
    return value if value.tzinfo is not None else local_to_utc(value, time_zone)


def _local_wall_time(value: datetime, time_zone: str) -> datetime:
    if value.tzinfo is None:
        return value.replace(second=0, microsecond=0)
    return value.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None, second=0, microsecond=0)


def refuse_barren_series(
    rule: Recurrence,
    start_local: datetime,
    client: Client,
    assignment: Assignment,
    now: datetime,
    pointer: list[str | int],
) -> None:
    """A 422 at `pointer` for a series with nothing from now on, or too dense to keep whole.
    "From now on" starts after the newest due time whose window has closed: one closing at
    this very moment is closed (as `materialize` sees it)."""
    from_utc = now - timedelta(minutes=assignment.grace_minutes) + timedelta(microseconds=1)
    refused = refusal(rule, start_local, client.time_zone, from_utc, HORIZON)
    if refused is not None:
        raise ValidationFailed.for_field("body", pointer, refused, "rrule")


def _apply_schedule(
    assignment: Assignment,
    schedule: Schedule,
    client: Client,
    now: datetime,
    pointer: list[str | int],
) -> None:
    assignment.schedule_type = schedule.type
    assignment.rrule = None
    assignment.start_local = None
    if isinstance(schedule, OnceSchedule):
        assignment.due_at = _instant(schedule.due_at, client.time_zone)
        assignment.starts_at = min(now, assignment.due_at)
    elif isinstance(schedule, RecurringSchedule):
        try:
            rule = Recurrence.parse(schedule.rrule)
        except RecurrenceError as exc:
            raise ValidationFailed.for_field(
                "body", [*pointer, "rrule"], str(exc), "rrule"
            ) from exc
        start_local = _local_wall_time(schedule.start, client.time_zone)
        if (
            len(
                expand(
                    rule,
                    start_local=start_local,
                    tz=client.time_zone,
                    window_end_utc=now,
                    limit=MAX_PAST + 1,
                )
            )
            > MAX_PAST
        ):
            raise ValidationFailed.for_field(
                "body",
                [*pointer, "start"],
                f"is more than {MAX_PAST} occurrences ago: start the series where the plan's "
                "current stretch began",
                "too_old",
            )
        refuse_barren_series(rule, start_local, client, assignment, now, [*pointer, "rrule"])
        assignment.rrule = rule.to_rrule()
        assignment.start_local = start_local.strftime(LOCAL_FORMAT)
        assignment.starts_at = scheduling.series_starts_at(rule, start_local, client.time_zone, now)
        assignment.due_at = None
        assignment.materialized_until = None
    else:
        session_at = scheduling.upcoming_session(client, now)
        if session_at is None:
            raise ValidationFailed.for_field(
                "body",
                [*pointer, "type"],
                "the client has no upcoming session booked",
                "no_session",
            )
        assignment.due_at = session_at
        assignment.starts_at = now


async def draft(
    session: AsyncSession, principal: Principal, body: AssignmentCreate, now: datetime
) -> tuple[Assignment, Client, TemplateVersion]:
    """The assignment `body` asks for, checked and scheduled as creating it checks it, but not
    added to the session: `create` saves it, a preview only looks at it."""
    client = await _client(session, principal, body.client_id)
    clinician_id = await _assigning_clinician(session, principal, client, body.clinician_id)
    version = await templates.get_assignable_version(session, principal, body.template_id)
    template = await session.get(Template, version.template_id)
    assert template is not None
    assignment = Assignment(
        tenant_id=principal.tenant_id,
        client_id=client.id,
        clinician_id=clinician_id,
        template_id=template.id,
        template_version_id=version.id,
        kind=template.kind,
        title=body.title or version.name,
        instructions=body.instructions or version.instructions,
        purpose=body.purpose,
        difficulty_step=body.difficulty_step,
        status="active",
        opens_before_minutes=body.window.opens_before_minutes,
        grace_minutes=body.window.grace_minutes,
        reminder_policy=body.reminders.model_dump() if body.reminders else None,
        # Set here, not left to the column's default: a preview's draft is never flushed.
        ordinal_base=0,
    )
    _apply_schedule(assignment, body.schedule, client, now, ["schedule"])
    return assignment, client, version


async def create(
    session: AsyncSession, principal: Principal, body: AssignmentCreate, now: datetime
) -> tuple[Assignment, list[Occurrence]]:
    assignment, client, _ = await draft(session, principal, body, now)
    session.add(assignment)
    await session.flush()
    occurrences = await scheduling.materialize(session, assignment, client, now)
    record_event(
        session,
        assignment.tenant_id,
        EventType.assignment_created,
        client_id=client.id,
        assignment_id=assignment.id,
    )
    await audit.record(
        session, principal, Action.create, "assignment", [(client.id, assignment.id)]
    )
    return assignment, occurrences


async def get(
    session: AsyncSession, principal: Principal, assignment_id: str, *, action: Action = Action.read
) -> Assignment:
    assignment = await session.scalar(
        visible_assignments(principal).where(Assignment.id == assignment_id)
    )
    if assignment is None:
        await audit.record_refusal_if_hidden(
            session, principal, action, "assignment", assignment_id
        )
        raise NotFound("No such assignment.")
    await audit.record(
        session, principal, action, "assignment", [(assignment.client_id, assignment.id)]
    )
    return assignment


async def read(session: AsyncSession, principal: Principal, assignment_id: str) -> Any:
    """The assignment, as a record, for a response (`get` loads it for a change)."""
    found = await _READ[principal.kind].fetch_one(
        session,
        tenant_id=principal.tenant_id,
        subject_id=principal.subject_id,
        assignment_id=assignment_id,
    )
    if found is None:
        await audit.record_refusal_if_hidden(
            session, principal, Action.read, "assignment", assignment_id
        )
        raise NotFound("No such assignment.")
    (assignment,) = found
    await audit.record(
        session, principal, Action.read, "assignment", [(assignment.client_id, assignment.id)]
    )
    return assignment


_READ = {
    kind: Statement(
        assignment_rows_visible_to(kind).where(ASSIGNMENTS.c.id == param("assignment_id")),
        [ASSIGNMENTS],
    )
    for kind in Context
}
_OCCURRENCES_OF = Statement(
    select(*OCCURRENCES.c)
    .where(OCCURRENCES.c.assignment_id == param("assignment_id"))
    .order_by(OCCURRENCES.c.ordinal),
    [OCCURRENCES],
)


@functools.cache
def _search_statement(kind: Context, filters: tuple[str, ...], after: bool) -> Statement:
    """One statement per shape of search (the caller's kind, the filters given, a cursor or
    not), built on first use; the values come with each call."""
    statement = assignment_rows_visible_to(kind)
    for name in filters:
        if name in ("client_id", "status", "kind"):
            statement = statement.where(ASSIGNMENTS.c[name] == param(name))
    if "due_from" in filters or "due_to" in filters:
        due = exists().where(OCCURRENCES.c.assignment_id == ASSIGNMENTS.c.id)
        if "due_from" in filters:
            due = due.where(OCCURRENCES.c.due_at >= param("due_from"))
        if "due_to" in filters:
            due = due.where(OCCURRENCES.c.due_at < param("due_to"))
        statement = statement.where(due)
    if after:
        statement = statement.where(ASSIGNMENTS.c.id < param("after"))
    return Statement(
        statement.order_by(ASSIGNMENTS.c.id.desc()).limit(param("limit")), [ASSIGNMENTS]
    )


async def search(
    session: AsyncSession,
    principal: Principal,
    filters: AssignmentFilters,
    *,
    limit: int,
    cursor: str | None,
    include_occurrences: bool,
) -> tuple[list[Any], dict[str, list[Any]], str | None]:
    """A page of assignments, newest first, as records; their occurrences when asked."""
    given = {k: v for k, v in dataclasses.asdict(filters).items() if v is not None}
    after = {"after": decode_cursor(cursor)} if cursor else {}
    statement = _search_statement(principal.kind, tuple(given), bool(after))
    rows = await statement.fetch(
        session,
        tenant_id=principal.tenant_id,
        subject_id=principal.subject_id,
        limit=limit + 1,  # one more than the page: is there another?
        **given,
        **after,
    )
    found, next_cursor = page_of([a for (a,) in rows], limit, lambda a: a.id)
    by_assignment: dict[str, list[Any]] = defaultdict(list)
    if include_occurrences and found:
        # One query for the whole page's occurrences, however many assignments it holds.
        occurrences = await session.scalars(
            select(Occurrence)
            .where(Occurrence.assignment_id.in_([a.id for a in found]))
            .order_by(Occurrence.assignment_id, Occurrence.ordinal)
        )
        for occurrence in occurrences:
            by_assignment[occurrence.assignment_id].append(occurrence)
    await audit.record(
        session, principal, Action.list, "assignment", [(a.client_id, a.id) for a in found]
    )
    return found, by_assignment, next_cursor


async def occurrence_records(session: AsyncSession, assignment_id: str) -> list[Any]:
    """An assignment's occurrences in order, as records for a response."""
    return [o for (o,) in await _OCCURRENCES_OF.fetch(session, assignment_id=assignment_id)]


async def occurrences_of(session: AsyncSession, assignment: Assignment) -> Sequence[Occurrence]:
    return (
        await session.scalars(
            select(Occurrence)
            .where(Occurrence.assignment_id == assignment.id)
            .order_by(Occurrence.ordinal)
        )
    ).all()


def _changed(assignment: Assignment, values: dict[str, Any]) -> list[str]:
    changed = []
    for field, value in values.items():
        if getattr(assignment, field) != value:
            setattr(assignment, field, value)
            changed.append(field)
    return changed


async def update(
    session: AsyncSession,
    principal: Principal,
    assignment: Assignment,
    body: AssignmentUpdate,
    now: datetime,
) -> Assignment:
    _clinical_side_only(principal, "change an assignment")
    _require_active(assignment)
    fields = body.model_dump(exclude_unset=True, exclude={"schedule", "window", "reminders"})
    for required in ("title", "instructions"):
        if required in fields and fields[required] is None:
            raise ValidationFailed.for_field("body", [required], "may not be null", "null")
    changed = _changed(assignment, fields)
    reschedule = new_series = False
    if body.window is not None:
        window = _changed(assignment, body.window.model_dump())
        changed += window
        reschedule = bool(window)
    if body.schedule is not None:
        client = await session.get(Client, assignment.client_id)
        assert client is not None
        before = _schedule_of(assignment)
        _apply_schedule(assignment, body.schedule, client, now, ["schedule"])
        if _schedule_of(assignment) != before:
            changed.append("schedule")
            reschedule = True
            new_series = True
    if reschedule:
        await reschedule_assignment(session, assignment, now, new_series=new_series)
    if "reminders" in body.model_fields_set:
        policy = body.reminders.model_dump() if body.reminders else None
        if policy != assignment.reminder_policy:
            assignment.reminder_policy = policy
            changed.append("reminders")
            await reminders.resync_assignment(session, assignment, now)
    if changed:
        await session.flush()
        record_event(
            session,
            assignment.tenant_id,
            EventType.assignment_updated,
            client_id=assignment.client_id,
            changed_fields=changed,
            assignment_id=assignment.id,
        )
    return assignment


def _schedule_of(assignment: Assignment) -> tuple[object, ...]:
    return (assignment.schedule_type, assignment.rrule, assignment.start_local, assignment.due_at)


async def reschedule_assignment(
    session: AsyncSession, assignment: Assignment, now: datetime, *, new_series: bool
) -> None:
    client = await session.get(Client, assignment.client_id)
    assert client is not None
    await scheduling.recompute_future(session, assignment, client, now, new_series=new_series)


def _require_active(assignment: Assignment) -> None:
    if assignment.status != "active":
        raise Conflict(f"The assignment is {assignment.status}.")


async def cancel(
    session: AsyncSession, principal: Principal, assignment: Assignment, now: datetime
) -> Assignment:
    _clinical_side_only(principal, "cancel an assignment")
    if assignment.status == "cancelled":
        return assignment
    _require_active(assignment)
    assignment.status = "cancelled"
    assignment.cancelled_at = now
    assignment.ended_at = now
    for occurrence in await occurrences_of(session, assignment):
        if occurrence.status in OccurrenceStatus.UNRESOLVED:
            occurrence.status = OccurrenceStatus.cancelled
    await session.flush()
    await reminders.cancel_pending(session, "cancelled", assignment_id=assignment.id)
    record_event(
        session,
        assignment.tenant_id,
        EventType.assignment_cancelled,
        client_id=assignment.client_id,
        assignment_id=assignment.id,
    )
    return assignment


async def follow_client_changes(
    session: AsyncSession, client: Client, changed: set[str], now: datetime
) -> None:
    """The client moved zone or booked another session: recompute what has not opened yet."""
    if not changed & {"time_zone", "next_session_at"}:
        return
    active = (
        await session.scalars(
            select(Assignment).where(
                Assignment.client_id == client.id, Assignment.status == "active"
            )
        )
    ).all()
    for assignment in active:
        if assignment.schedule_type == ScheduleType.before_next_session:
            if "next_session_at" not in changed:
                continue
            assignment.due_at = scheduling.upcoming_session(client, now)
        elif "time_zone" not in changed or assignment.schedule_type != ScheduleType.recurring:
            continue
        await scheduling.recompute_future(session, assignment, client, now)


async def version_of(session: AsyncSession, assignment: Assignment) -> TemplateVersion:
    version = await session.get(TemplateVersion, assignment.template_version_id)
    assert version is not None
    return version


def schedule_window(assignment: Assignment) -> Window:
    return Window(
        opens_before_minutes=assignment.opens_before_minutes,
        grace_minutes=assignment.grace_minutes,
    )


_RESOLUTION = Statement(
    select(
        func.count(),
        func.count().filter(OCCURRENCES.c.status.in_(OccurrenceStatus.UNRESOLVED)),
        func.count().filter(
            OCCURRENCES.c.status.in_((OccurrenceStatus.completed, OccurrenceStatus.partial))
        ),
    ).where(OCCURRENCES.c.assignment_id == param("assignment_id"))
)


async def finish_if_resolved(session: AsyncSession, assignment: Any, now: datetime) -> None:
    """End the assignment as soon as its last occurrence is resolved (the worker does the same
    in batches for those resolved by time): `completed` if any was done, else `expired`.
    `assignment` may be a record: it is loaded to be changed only when it ends."""
    if assignment.status != "active" or not assignment.series_complete:
        return
    ((total, unresolved, done),) = await _RESOLUTION.fetch(session, assignment_id=assignment.id)
    if not total or unresolved:
        return
    ending = await session.get(Assignment, assignment.id)
    assert ending is not None
    ending.status = "completed" if done else "expired"
    ending.ended_at = now
    await session.flush()
    if done:
        record_event(
            session,
            ending.tenant_id,
            EventType.assignment_completed,
            client_id=ending.client_id,
            assignment_id=ending.id,
        )
