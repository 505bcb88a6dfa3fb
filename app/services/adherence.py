"""Adherence and the clinician's caseload: how the homework went, computed by the database.

The definitions (docs/ADHERENCE.md has them in full):
- an occurrence is *counted* when it is due in the window, is not cancelled, and is resolved
  (completed, partial, missed, declined) or its completion window has closed (an unresolved
  occurrence past its window is missed, whether or not the worker has marked it yet);
- the *completion rate* is completed-or-partial counted occurrences over counted occurrences;
- the *on-time rate* is, of those completed or partial, the share whose completion is not late;
- a *streak* is a run of completed-or-partial counted occurrences in due-time order; the
  current streak ends at the latest counted occurrence.

Sums, counts and means are SQL aggregates grouped by kind (or by client for the caseload);
only streaks and runs are counted in Python, from one narrow ordered column select bounded by
the window. Every statement is filtered through `app.services.access`. Each call takes a fixed
number of queries, whatever the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import ColumnElement, String, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.core.security import Principal
from app.models import Assignment, CareTeamMember, Client, Clinician, Completion, Occurrence
from app.schemas.completions import Barrier
from app.services import audit
from app.services.access import (
    visible_clients,
    visible_clinicians,
    visible_completions,
    visible_occurrences,
)
from app.services.audit import Action
from app.services.statuses import OccurrenceStatus

DEFAULT_WINDOW = timedelta(days=28)
MAX_WINDOW = timedelta(days=366)
CASELOAD_WINDOW = timedelta(days=28)
HELPFULNESS_PERIOD = timedelta(days=7)

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


def counted(now: datetime) -> ColumnElement[bool]:
    """Resolved, or past its window: what the completion rate and streaks are made of."""
    return or_(
        Occurrence.status.in_(RESOLVED_STATUSES),
        and_(Occurrence.status.in_(OccurrenceStatus.UNRESOLVED), Occurrence.closes_at <= now),
    )


def is_done() -> ColumnElement[bool]:
    return Occurrence.status.in_(DONE_STATUSES)


def _ones(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _barrier_sums() -> list[ColumnElement[Any]]:
    """One sum per barrier code. The codes are a closed set of plain words, so `"code"` (with
    its quotes) occurs in the JSON list's text exactly when the code is in the list: the same
    SQL on PostgreSQL (`json` cast to text) and SQLite (JSON stored as text)."""
    text = cast(Completion.barriers, String)
    return [_ones(text.like(f'%"{code}"%')) for code in BARRIERS]


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
        raise NotFound("No such client.")


# Adherence


@dataclass
class Figures:
    counted: int = 0
    completed: int = 0
    on_time: int = 0
    helpfulness_total: int = 0
    rated: int = 0
    barriers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BARRIERS, 0))
    current_streak: int = 0
    best_streak: int = 0

    def add(self, other: Figures) -> None:
        self.counted += other.counted
        self.completed += other.completed
        self.on_time += other.on_time
        self.helpfulness_total += other.helpfulness_total
        self.rated += other.rated
        for code, n in other.barriers.items():
            self.barriers[code] += n

    @property
    def completion_rate(self) -> float | None:
        return ratio(self.completed, self.counted)

    @property
    def on_time_rate(self) -> float | None:
        return ratio(self.on_time, self.completed)

    @property
    def mean_helpfulness(self) -> float | None:
        return mean(self.helpfulness_total, self.rated)


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
            _ones(counted(now)),
            _ones(done),
            _ones(and_(done, Completion.late.is_(False))),
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
    for kind, n_counted, n_done, n_on_time, h_total, n_rated, *barriers in await session.execute(
        statement
    ):
        figures[kind] = Figures(
            counted=int(n_counted),
            completed=int(n_done),
            on_time=int(n_on_time),
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
) -> Sequence[tuple[str, str]]:
    """(kind, status) of each counted occurrence, by due time: what streaks are counted from."""
    statement = (
        visible_occurrences(principal)
        .with_only_columns(Assignment.kind, Occurrence.status)
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
    return [(kind, status) for kind, status in await session.execute(statement)]


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
        status in DONE_STATUSES for _, status in in_order
    )
    for kind, figures in by_kind.items():
        figures.current_streak, figures.best_streak = streaks(
            status in DONE_STATUSES for k, status in in_order if k == kind
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
        exposure=exposure,
        measures=measures,
    )


# Caseload


@dataclass(frozen=True)
class CaseloadRow:
    client_id: str
    external_id: str
    next_session_at: datetime | None
    open_distress_flags: int
    missed_in_a_row: int
    helpfulness_recent: float | None
    helpfulness_previous: float | None
    completion_rate_28d: float | None
    last_completed_at: datetime | None

    @property
    def helpfulness_trend(self) -> float | None:
        if self.helpfulness_recent is None or self.helpfulness_previous is None:
            return None
        return round(self.helpfulness_recent - self.helpfulness_previous, 2)

    def need(self) -> tuple[int, int, float, str]:
        """Sort key, most in need first. An unknown trend ranks as no change."""
        trend = self.helpfulness_trend
        return (
            -self.open_distress_flags,
            -self.missed_in_a_row,
            trend if trend is not None else 0.0,
            self.client_id,
        )


async def caseload(
    session: AsyncSession, principal: Principal, clinician_id: str, now: datetime
) -> tuple[str, list[CaseloadRow]]:
    """Every client on the clinician's care teams, most in need first: five statements, each
    grouped over all of the clinician's clients at once."""
    # A clinician reads their own caseload only; a colleague's id is not found.
    mine = [Clinician.id == principal.subject_id] if principal.is_clinician else []
    found = await session.scalar(
        visible_clinicians(principal)
        .with_only_columns(Clinician.id)
        .where(Clinician.id == clinician_id, *mine)
    )
    if found is None:
        raise NotFound("No such clinician.")
    team = select(CareTeamMember.client_id).where(
        CareTeamMember.tenant_id == principal.tenant_id,
        CareTeamMember.clinician_id == clinician_id,
    )

    # The latest work done, ever: an index probe per client on (client_id, completed_at).
    last_completed_at = (
        visible_completions(principal)
        .with_only_columns(func.max(Completion.completed_at))
        .where(Completion.client_id == Client.id, Completion.status.in_(COMPLETED_WORK))
        .scalar_subquery()
    )
    clients = (
        await session.execute(
            visible_clients(principal)
            .with_only_columns(
                Client.id, Client.external_id, Client.next_session_at, last_completed_at
            )
            .where(Client.id.in_(team))
        )
    ).all()

    # Open flags (any age) and helpfulness over the last two weeks, in one pass over the
    # completions that match either.
    recent_from = now - HELPFULNESS_PERIOD
    previous_from = recent_from - HELPFULNESS_PERIOD
    open_flag = and_(Completion.distress_flagged.is_(True), Completion.reviewed_at.is_(None))
    is_recent = Completion.completed_at >= recent_from
    is_previous = and_(
        Completion.completed_at >= previous_from, Completion.completed_at < recent_from
    )
    completion_figures = {
        client_id: rest
        for client_id, *rest in await session.execute(
            visible_completions(principal)
            .with_only_columns(
                Completion.client_id,
                _ones(open_flag),
                func.sum(case((is_recent, Completion.helpfulness))),
                func.count(case((is_recent, Completion.helpfulness))),
                func.sum(case((is_previous, Completion.helpfulness))),
                func.count(case((is_previous, Completion.helpfulness))),
            )
            .where(
                Completion.client_id.in_(team),
                or_(open_flag, Completion.completed_at >= previous_from),
            )
            .group_by(Completion.client_id)
        )
    }

    # The last 28 days of occurrences: the completion rate (due before now, as adherence
    # counts it) and the missed run, which is every counted occurrence not done that is due
    # after the client's latest done one (work done early for later counts: a client who has
    # just done tonight's log is no longer missing it).
    since = now - CASELOAD_WINDOW
    last_done = (
        visible_occurrences(principal)
        .with_only_columns(
            Occurrence.client_id.label("client_id"), func.max(Occurrence.due_at).label("due_at")
        )
        .where(Occurrence.client_id.in_(team), Occurrence.due_at >= since, is_done())
        .group_by(Occurrence.client_id)
        .subquery("last_done")
    )
    due_before_now = Occurrence.due_at < now
    missed_since_last_done = and_(
        counted(now),
        ~is_done(),
        or_(last_done.c.due_at.is_(None), Occurrence.due_at > last_done.c.due_at),
    )
    occurrence_figures = {
        client_id: (ratio(int(n_done), int(n_counted)), int(n_missed))
        for client_id, n_counted, n_done, n_missed in await session.execute(
            visible_occurrences(principal)
            .with_only_columns(
                Occurrence.client_id,
                _ones(and_(due_before_now, counted(now))),
                _ones(and_(due_before_now, is_done())),
                _ones(missed_since_last_done),
            )
            .select_from(Occurrence)
            .outerjoin(last_done, last_done.c.client_id == Occurrence.client_id)
            .where(
                Occurrence.client_id.in_(team),
                Occurrence.due_at >= since,
                Occurrence.status != OccurrenceStatus.cancelled,
            )
            .group_by(Occurrence.client_id)
        )
    }

    rows = []
    for client_id, external_id, next_session_at, last_done_at in clients:
        flags, recent_sum, recent_n, previous_sum, previous_n = completion_figures.get(
            client_id, (0, None, 0, None, 0)
        )
        rate, missed = occurrence_figures.get(client_id, (None, 0))
        rows.append(
            CaseloadRow(
                client_id=client_id,
                external_id=external_id,
                next_session_at=next_session_at,
                open_distress_flags=int(flags),
                missed_in_a_row=missed,
                helpfulness_recent=mean(recent_sum, int(recent_n)),
                helpfulness_previous=mean(previous_sum, int(previous_n)),
                completion_rate_28d=rate,
                last_completed_at=last_done_at,
            )
        )
    rows.sort(key=CaseloadRow.need)
    await audit.record(
        session, principal, Action.list, "caseload", [(row.client_id, clinician_id) for row in rows]
    )
    return clinician_id, rows
