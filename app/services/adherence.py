"""Adherence and the clinician's caseload: how the homework went, computed by the database.

The definitions (docs/ADHERENCE.md has them in full):
- an occurrence is *counted* when it is due in the window, is not cancelled, and is resolved
  (completed, partial, missed, declined) or its completion window has closed (an unresolved
  occurrence past its window is missed, whether or not the worker has marked it yet);
- the *completion rate* is completed-or-partial counted occurrences over counted occurrences;
- the *on-time rate* is, of those completed or partial, the share whose completion is not late
  (imports from another system are left out: their times are not ours to judge);
- a *streak* is a run of completed-or-partial counted occurrences in due-time order; the
  current streak ends at the latest counted occurrence;
- a *week* is seven days of the window from its start (the last one may be shorter); its
  completion rate is that of the counted occurrences due in it.

Sums, counts and means are SQL aggregates grouped by kind (or by client for the caseload);
only streaks, runs and weeks are counted in Python, from one narrow ordered column select
bounded by the window. Every statement is filtered through `app.services.access`. Each call
takes a fixed number of queries, whatever the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import ColumnElement, String, and_, case, cast, func, or_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.core.security import Principal
from app.models import Assignment, Client, Completion, Occurrence
from app.schemas.completions import Barrier
from app.services import audit
from app.services.access import (
    visible_clients,
    visible_completions,
    visible_occurrences,
)
from app.services.audit import Action
from app.services.statuses import OccurrenceStatus

DEFAULT_WINDOW = timedelta(days=28)
MAX_WINDOW = timedelta(days=366)
WEEK = timedelta(days=7)

BARRIERS: tuple[str, ...] = get_args(Barrier)
DONE_STATUSES = (OccurrenceStatus.completed, OccurrenceStatus.partial)
RESOLVED_STATUSES = (
    OccurrenceStatus.completed,
    OccurrenceStatus.partial,
    OccurrenceStatus.missed,
    OccurrenceStatus.declined,
)
COMPLETED_WORK = ("done", "partial")  # completion statuses that count as having done the work
MEASURE_KINDS = ("phq9", "gad7")


# Shared conditions


def counted(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Resolved, or past its window: what the completion rate and streaks are made of."""
    return or_(
        Occurrence.status.in_(RESOLVED_STATUSES),
        and_(Occurrence.status.in_(OccurrenceStatus.UNRESOLVED), Occurrence.closes_at <= now),
    )


def is_done() -> ColumnElement[bool]:
    return Occurrence.status.in_(DONE_STATUSES)


def ones(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _barrier_sums() -> list[ColumnElement[Any]]:
    """One sum per barrier code. The codes are a closed set of plain words, so `"code"` (with
    its quotes) occurs in the JSON list's text exactly when the code is in the list: the same
    SQL on PostgreSQL (`json` cast to text) and SQLite (JSON stored as text)."""
    text = cast(Completion.barriers, String)
    return [ones(text.like(f'%"{code}"%')) for code in BARRIERS]


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def mean(total: Any, count: int) -> float | None:
    return round(float(total) / count, 2) if count else None


def streaks(done_in_order: Iterable[bool]) -> tuple[int, int]:
    """(current, best): runs of done, the current one ending at the last item."""
    run = best = 0
    for done in done_in_order:
        run = run + 1 if done else 0
        best = max(best, run)
    return run, best


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window asked for: by default the last 28 days ending now; at most 366 days."""
    end = (end or now).astimezone(UTC)
    start = (start or end - DEFAULT_WINDOW).astimezone(UTC)
    if start >= end:
        raise ValidationFailed.for_field("query", ["from"], "must be before `to`", "window_order")
    if end - start > MAX_WINDOW:
        raise ValidationFailed.for_field(
            "query", ["from"], "the window may span at most 366 days", "window_too_long"
        )
    return start, end


async def visible_client_id(session: AsyncSession, principal: Principal, client_id: str) -> None:
    found = await session.scalar(
        visible_clients(principal).with_only_columns(Client.id).where(Client.id == client_id)
    )
    if found is None:
        await audit.record_refusal_if_hidden(
            session, principal, Action.read, "adherence", client_id
        )
        raise NotFound("No such client.")


# Adherence


@dataclass
class Figures:
    counted: int = 0
    completed: int = 0
    on_time: int = 0
    imported: int = 0
    helpfulness_total: int = 0
    rated: int = 0
    barriers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BARRIERS, 0))
    current_streak: int = 0
    best_streak: int = 0

    def add(self, other: Figures) -> None:
        self.counted += other.counted
        self.completed += other.completed
        self.on_time += other.on_time
        self.imported += other.imported
        self.helpfulness_total += other.helpfulness_total
        self.rated += other.rated
        for code, n in other.barriers.items():
            self.barriers[code] += n

    @property
    def completion_rate(self) -> float | None:
        return ratio(self.completed, self.counted)

    @property
    def on_time_rate(self) -> float | None:
        # An import's time is another system's record, neither on time nor late here.
        return ratio(self.on_time, self.completed - self.imported)

    @property
    def mean_helpfulness(self) -> float | None:
        return mean(self.helpfulness_total, self.rated)


@dataclass
class Week:
    start: datetime
    end: datetime
    counted: int = 0
    completed: int = 0

    @property
    def completion_rate(self) -> float | None:
        return ratio(self.completed, self.counted)


def weeks(
    start: datetime, end: datetime, counted_due: Iterable[tuple[datetime, bool]]
) -> list[Week]:
    """The window cut into weeks from its start, each with its counted and done occurrences
    (by due time). Every week is there, with zeros when nothing was counted in it."""
    bounds = []
    week_start = start
    while week_start < end:
        bounds.append(Week(week_start, min(week_start + WEEK, end)))
        week_start += WEEK
    for due_at, done in counted_due:
        week = bounds[(due_at - start) // WEEK]
        week.counted += 1
        week.completed += done
    return bounds


@dataclass(frozen=True)
class SudsPoint:
    completion_id: str
    completed_at: datetime
    status: str
    step: str | None
    suds_before: int | None
    suds_peak: int | None
    suds_after: int | None


@dataclass(frozen=True)
class MeasurePoint:
    completion_id: str
    kind: str
    completed_at: datetime
    score: int
    severity: str


@dataclass(frozen=True)
class Adherence:
    client_id: str
    start: datetime
    end: datetime
    as_of: datetime
    overall: Figures
    by_kind: dict[str, Figures]
    by_week: list[Week]
    exposure: list[SudsPoint]
    measures: list[MeasurePoint]


async def _figures_by_kind(
    session: AsyncSession,
    principal: Principal,
    client_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Figures]:
    done = is_done()
    statement = (
        visible_occurrences(principal)
        .with_only_columns(
            Assignment.kind,
            ones(counted(now)),
            ones(done),
            ones(and_(done, Completion.late.is_(False), Completion.imported.is_(False))),
            ones(and_(done, Completion.imported.is_(True))),
            func.coalesce(func.sum(Completion.helpfulness), 0),
            func.count(Completion.helpfulness),
            *_barrier_sums(),
        )
        .select_from(Occurrence)
        .join(Assignment, Assignment.id == Occurrence.assignment_id)
        .outerjoin(Completion, Completion.occurrence_id == Occurrence.id)
        .where(
            Occurrence.client_id == client_id,
            Occurrence.due_at >= start,
            Occurrence.due_at < end,
            Occurrence.status != OccurrenceStatus.cancelled,
        )
        .group_by(Assignment.kind)
    )
    figures = {}
    rows = await session.execute(statement)
    for kind, n_counted, n_done, n_on_time, n_imported, h_total, n_rated, *barriers in rows:
        figures[kind] = Figures(
            counted=int(n_counted),
            completed=int(n_done),
            on_time=int(n_on_time),
            imported=int(n_imported),
            helpfulness_total=int(h_total),
            rated=int(n_rated),
            barriers={code: int(n) for code, n in zip(BARRIERS, barriers, strict=True)},
        )
    return figures


async def _counted_in_due_order(
    session: AsyncSession,
    principal: Principal,
    client_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Sequence[tuple[str, str, datetime]]:
    """(kind, status, due_at) of each counted occurrence, by due time: what streaks and weeks
    are counted from."""
    statement = (
        visible_occurrences(principal)
        .with_only_columns(Assignment.kind, Occurrence.status, Occurrence.due_at)
        .select_from(Occurrence)
        .join(Assignment, Assignment.id == Occurrence.assignment_id)
        .where(
            Occurrence.client_id == client_id,
            Occurrence.due_at >= start,
            Occurrence.due_at < end,
            counted(now),
        )
        .order_by(Occurrence.due_at, Occurrence.id)
    )
    return [(kind, status, due_at) for kind, status, due_at in await session.execute(statement)]


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _exposure_series(
    session: AsyncSession, principal: Principal, client_id: str, start: datetime, end: datetime
) -> list[SudsPoint]:
    statement = (
        visible_completions(principal)
        .with_only_columns(
            Completion.id, Completion.completed_at, Completion.status, Completion.answers
        )
        .where(
            Completion.client_id == client_id,
            Completion.kind == "exposure",
            Completion.status.in_(COMPLETED_WORK),
            Completion.completed_at >= start,
            Completion.completed_at < end,
        )
        .order_by(Completion.completed_at, Completion.id)
    )
    points = []
    for completion_id, completed_at, status, answers in await session.execute(statement):
        answers = answers or {}
        step = answers.get("step")
        points.append(
            SudsPoint(
                completion_id=completion_id,
                completed_at=completed_at,
                status=status,
                step=step if isinstance(step, str) else None,
                suds_before=_int_or_none(answers.get("suds_before")),
                suds_peak=_int_or_none(answers.get("suds_peak")),
                suds_after=_int_or_none(answers.get("suds_after")),
            )
        )
    return points


async def _measure_series(
    session: AsyncSession, principal: Principal, client_id: str, start: datetime, end: datetime
) -> list[MeasurePoint]:
    statement = (
        visible_completions(principal)
        .with_only_columns(
            Completion.id,
            Completion.kind,
            Completion.completed_at,
            Completion.score,
            Completion.severity,
        )
        .where(
            Completion.client_id == client_id,
            Completion.kind.in_(MEASURE_KINDS),
            Completion.score.is_not(None),
            Completion.completed_at >= start,
            Completion.completed_at < end,
        )
        .order_by(Completion.completed_at, Completion.id)
    )
    return [
        MeasurePoint(completion_id, kind, completed_at, score or 0, severity or "")
        for completion_id, kind, completed_at, score, severity in await session.execute(statement)
    ]


async def adherence(
    session: AsyncSession,
    principal: Principal,
    client_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> Adherence:
    start, end = window(start, end, now)
    await visible_client_id(session, principal, client_id)
    by_kind = await _figures_by_kind(session, principal, client_id, start, end, now)
    in_order = await _counted_in_due_order(session, principal, client_id, start, end, now)
    overall = Figures()
    for figures in by_kind.values():
        overall.add(figures)
    overall.current_streak, overall.best_streak = streaks(
        status in DONE_STATUSES for _, status, _ in in_order
    )
    for kind, figures in by_kind.items():
        figures.current_streak, figures.best_streak = streaks(
            status in DONE_STATUSES for k, status, _ in in_order if k == kind
        )
    by_week = weeks(
        start, end, ((due_at, status in DONE_STATUSES) for _, status, due_at in in_order)
    )
    exposure = await _exposure_series(session, principal, client_id, start, end)
    measures = await _measure_series(session, principal, client_id, start, end)
    await audit.record(session, principal, Action.read, "adherence", [(client_id, client_id)])
    return Adherence(
        client_id=client_id,
        start=start,
        end=end,
        as_of=now,
        overall=overall,
        by_kind=dict(sorted(by_kind.items())),
        by_week=by_week,
        exposure=exposure,
        measures=measures,
    )


# Caseload
