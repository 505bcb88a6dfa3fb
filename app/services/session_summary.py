"""The session summary: what a clinician reads in the two minutes before a session.

Since a moment (by default 7 days before now): what was assigned, what was done, partly done
and not done (with the barriers the client gave), distress flags, adjustments, mean
helpfulness, and the latest PHQ-9 and GAD-7 scores with their change. A fixed number of
queries, each filtered through `app.services.access`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.core.security import Principal
from app.models import Adjustment, Assignment, Client, Completion, Occurrence
from app.services import audit
from app.services.access import (
    client_visibility,
    visible_assignments,
    visible_clients,
    visible_completions,
    visible_occurrences,
)
from app.services.adherence import MAX_WINDOW, MEASURE_KINDS, counted, mean
from app.services.audit import Action
from app.services.statuses import OccurrenceStatus

DEFAULT_SINCE = timedelta(days=7)


@dataclass(frozen=True)
class Assigned:
    assignment_id: str
    title: str
    kind: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Item:
    occurrence_id: str
    assignment_id: str
    title: str
    kind: str
    due_at: datetime
    status: str
    completion_id: str | None
    completed_at: datetime | None
    late: bool | None
    helpfulness: int | None
    barriers: list[str]
    barrier_note: str | None


@dataclass(frozen=True)
class Flag:
    completion_id: str
    occurrence_id: str
    kind: str
    completed_at: datetime
    reasons: list[str]
    reviewed_at: datetime | None


@dataclass(frozen=True)
class AdjustmentItem:
    adjustment_id: str
    assignment_id: str
    title: str
    status: str
    proposed: dict[str, Any]
    note: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class Measure:
    completion_id: str
    completed_at: datetime
    score: int
    severity: str
    previous_score: int | None
    previous_severity: str | None

    @property
    def change(self) -> int | None:
        return None if self.previous_score is None else self.score - self.previous_score


@dataclass
class Summary:
    client_id: str
    since: datetime
    until: datetime
    next_session_at: datetime | None
    assigned: list[Assigned] = field(default_factory=list)
    done: list[Item] = field(default_factory=list)
    partly_done: list[Item] = field(default_factory=list)
    not_done: list[Item] = field(default_factory=list)
    distress_flags: list[Flag] = field(default_factory=list)
    adjustments: list[AdjustmentItem] = field(default_factory=list)
    mean_helpfulness: float | None = None
    rated: int = 0
    measures: dict[str, Measure | None] = field(default_factory=dict)


def _since(since: datetime | None, now: datetime) -> datetime:
    since = (since or now - DEFAULT_SINCE).astimezone(UTC)
    if since >= now:
        raise ValidationFailed.for_field("query", ["since"], "must be in the past", "future")
    if now - since > MAX_WINDOW:
        raise ValidationFailed.for_field(
            "query", ["since"], "may be at most 366 days ago", "window_too_long"
        )
    return since


async def _assigned(
    session: AsyncSession, principal: Principal, client_id: str, since: datetime
) -> list[Assigned]:
    statement = (
        visible_assignments(principal)
        .with_only_columns(
            Assignment.id,
            Assignment.title,
            Assignment.kind,
            Assignment.status,
            Assignment.created_at,
        )
        .where(Assignment.client_id == client_id, Assignment.created_at >= since)
        .order_by(Assignment.created_at, Assignment.id)
    )
    return [Assigned(*row) for row in await session.execute(statement)]


async def _items(
    session: AsyncSession, principal: Principal, client_id: str, since: datetime, now: datetime
) -> list[Item]:
    """Occurrences due since (and counted: resolved or past their window), and any completed
    since, whenever due (late ones, and early ones for work due later)."""
    statement = (
        visible_occurrences(principal)
        .with_only_columns(
            Occurrence.id,
            Occurrence.assignment_id,
            Assignment.title,
            Assignment.kind,
            Occurrence.due_at,
            Occurrence.status,
            Completion.id,
            Completion.completed_at,
            Completion.late,
            Completion.helpfulness,
            Completion.barriers,
            Completion.barrier_note,
        )
        .select_from(Occurrence)
        .join(Assignment, Assignment.id == Occurrence.assignment_id)
        .outerjoin(Completion, Completion.occurrence_id == Occurrence.id)
        .where(
            Occurrence.client_id == client_id,
            Occurrence.status != OccurrenceStatus.cancelled,
            or_(
                and_(Occurrence.due_at >= since, Occurrence.due_at < now, counted(now)),
                Completion.completed_at >= since,
            ),
        )
        .order_by(Occurrence.due_at, Occurrence.id)
    )
    items = []
    for row in await session.execute(statement):
        (occurrence_id, assignment_id, title, kind, due_at, status, *completion) = row
        completion_id, completed_at, late, helpfulness, barriers, note = completion
        if status in OccurrenceStatus.UNRESOLVED:
            status = OccurrenceStatus.missed  # its window closed with nothing recorded
        items.append(
            Item(
                occurrence_id,
                assignment_id,
                title,
                kind,
                due_at,
                status,
                completion_id,
                completed_at,
                late,
                helpfulness,
                list(barriers or []),
                note,
            )
        )
    return items


async def _flags(
    session: AsyncSession, principal: Principal, client_id: str, since: datetime
) -> list[Flag]:
    statement = (
        visible_completions(principal)
        .with_only_columns(
            Completion.id,
            Completion.occurrence_id,
            Completion.kind,
            Completion.completed_at,
            Completion.distress_reasons,
            Completion.reviewed_at,
        )
        .where(
            Completion.client_id == client_id,
            Completion.distress_flagged.is_(True),
            or_(Completion.reviewed_at.is_(None), Completion.completed_at >= since),
        )
        .order_by(Completion.completed_at, Completion.id)
    )
    return [
        Flag(completion_id, occurrence_id, kind, completed_at, list(reasons), reviewed_at)
        for completion_id, occurrence_id, kind, completed_at, reasons, reviewed_at in (
            await session.execute(statement)
        )
    ]


async def _adjustments(
    session: AsyncSession, principal: Principal, client_id: str, since: datetime
) -> list[AdjustmentItem]:
    statement = (
        select(
            Adjustment.id,
            Adjustment.assignment_id,
            Assignment.title,
            Adjustment.status,
            Adjustment.proposed,
            Adjustment.note,
            Adjustment.created_at,
            Adjustment.resolved_at,
        )
        .join(Assignment, Assignment.id == Adjustment.assignment_id)
        .where(
            Adjustment.tenant_id == principal.tenant_id,
            client_visibility(principal, Adjustment.client_id),
            Adjustment.client_id == client_id,
            or_(Adjustment.created_at >= since, Adjustment.resolved_at >= since),
        )
        .order_by(Adjustment.created_at, Adjustment.id)
    )
    return [
        AdjustmentItem(a_id, asg_id, title, status, dict(proposed), note, created, resolved)
        for a_id, asg_id, title, status, proposed, note, created, resolved in (
            await session.execute(statement)
        )
    ]


async def _helpfulness(
    session: AsyncSession, principal: Principal, client_id: str, since: datetime
) -> tuple[float | None, int]:
    total, rated = (
        await session.execute(
            visible_completions(principal)
            .with_only_columns(func.sum(Completion.helpfulness), func.count(Completion.helpfulness))
            .where(Completion.client_id == client_id, Completion.completed_at >= since)
        )
    ).one()
    return mean(total, int(rated)), int(rated)


async def _latest_measures(
    session: AsyncSession, principal: Principal, client_id: str
) -> dict[str, Measure | None]:
    """The latest two scores of each measure, ever, ranked by the database."""
    ranked = (
        visible_completions(principal)
        .with_only_columns(
            Completion.id,
            Completion.kind,
            Completion.completed_at,
            Completion.score,
            Completion.severity,
            func.row_number()
            .over(
                partition_by=Completion.kind,
                order_by=(Completion.completed_at.desc(), Completion.id.desc()),
            )
            .label("position"),
        )
        .where(
            Completion.client_id == client_id,
            Completion.kind.in_(MEASURE_KINDS),
            Completion.score.is_not(None),
        )
        .subquery()
    )
    rows = await session.execute(
        select(ranked).where(ranked.c.position <= 2).order_by(ranked.c.kind, ranked.c.position)
    )
    latest: dict[str, list[tuple[str, datetime, int, str]]] = {}
    for completion_id, kind, completed_at, score, severity, _ in rows:
        latest.setdefault(kind, []).append((completion_id, completed_at, score, severity or ""))
    measures: dict[str, Measure | None] = dict.fromkeys(MEASURE_KINDS)
    for kind, ((completion_id, completed_at, score, severity), *before) in latest.items():
        previous = before[0] if before else None
        measures[kind] = Measure(
            completion_id,
            completed_at,
            score,
            severity,
            previous_score=previous[2] if previous else None,
            previous_severity=previous[3] if previous else None,
        )
    return measures


async def summary(
    session: AsyncSession,
    principal: Principal,
    client_id: str,
    *,
    since: datetime | None,
    now: datetime,
) -> Summary:
    since = _since(since, now)
    client = (
        await session.execute(
            visible_clients(principal)
            .with_only_columns(Client.id, Client.next_session_at)
            .where(Client.id == client_id)
        )
    ).first()
    if client is None:
        await audit.record_refusal_if_hidden(
            session, principal, Action.read, "session_summary", client_id
        )
        raise NotFound("No such client.")
    result = Summary(client_id=client_id, since=since, until=now, next_session_at=client[1])
    result.assigned = await _assigned(session, principal, client_id, since)
    for item in await _items(session, principal, client_id, since, now):
        if item.status == OccurrenceStatus.completed:
            result.done.append(item)
        elif item.status == OccurrenceStatus.partial:
            result.partly_done.append(item)
        else:
            result.not_done.append(item)
    result.distress_flags = await _flags(session, principal, client_id, since)
    result.adjustments = await _adjustments(session, principal, client_id, since)
    result.mean_helpfulness, result.rated = await _helpfulness(session, principal, client_id, since)
    result.measures = await _latest_measures(session, principal, client_id)
    await audit.record(session, principal, Action.read, "session_summary", [(client_id, client_id)])
    return result
