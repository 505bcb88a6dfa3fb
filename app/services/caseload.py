"""The clinician's caseload: every client on their care teams, most in need first.

Three statements, each built once per kind of caller and run on the driver (app.core.driver),
each over all of the clinician's clients at once and each on an index:
- the clinician, as the caller may see them;
- the clients, each with its latest work done (one backward probe of (client_id,
  completed_at)), its open distress flags (the partial index of open flags) and its
  helpfulness over the last two weeks (a range of the same index);
- the last 28 days of occurrences per client, on (client_id, due_at).

The team subquery is the visibility check: a clinician reads only their own caseload, a client
(if ever given the scope) only their own row, the vendor's backend any clinician's in its tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.core.driver import Statement, param
from app.core.errors import NotFound
from app.core.scopes import Context
from app.core.security import Principal
from app.models import CareTeamMember, Client, Clinician, Completion, Occurrence
from app.services import audit
from app.services.adherence import COMPLETED_WORK, counted, is_done, mean, ones, ratio
from app.services.audit import Action
from app.services.statuses import OccurrenceStatus

CASELOAD_WINDOW = timedelta(days=28)
HELPFULNESS_PERIOD = timedelta(days=7)


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


def _clinician(kind: Context) -> Statement:
    """The clinician, if the caller may read their caseload: a clinician only their own; a
    client one of theirs; the backend any in its tenant."""
    statement = select(Clinician.id).where(
        Clinician.tenant_id == param("tenant_id"), Clinician.id == param("clinician_id")
    )
    if kind is Context.clinician:
        statement = statement.where(Clinician.id == param("subject_id"))
    elif kind is Context.client:
        statement = statement.where(
            select(CareTeamMember.client_id)
            .where(
                CareTeamMember.clinician_id == Clinician.id,
                CareTeamMember.client_id == param("subject_id"),
            )
            .exists()
        )
    return Statement(statement)


def _team(kind: Context) -> Any:
    """The clinician's clients that the caller may see: plain equalities on the care team's
    primary key, where `visible_clients`' EXISTS would be a second probe per client."""
    statement = select(CareTeamMember.client_id).where(
        CareTeamMember.tenant_id == param("tenant_id"),
        CareTeamMember.clinician_id == param("clinician_id"),
    )
    if kind is Context.clinician:
        return statement.where(CareTeamMember.clinician_id == param("subject_id"))
    if kind is Context.client:
        return statement.where(CareTeamMember.client_id == param("subject_id"))
    return statement


def _of_client(*conditions: ColumnElement[bool] | InstrumentedAttribute[bool]) -> Any:
    return select().where(Completion.client_id == Client.id, *conditions)


def _helpfulness(aggregate: Any, since: Any, until: Any = None) -> Any:
    period = [Completion.completed_at >= since]
    if until is not None:
        period.append(Completion.completed_at < until)
    return _of_client(*period).add_columns(aggregate(Completion.helpfulness)).scalar_subquery()


def _clients(kind: Context) -> Statement:
    recent, previous = param("recent_from"), param("previous_from")
    last_completed_at = (
        _of_client(Completion.status.in_(COMPLETED_WORK))
        .add_columns(Completion.completed_at)
        .order_by(Completion.completed_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    open_flags = (
        # Written as the partial index's own predicate, which `IS true` would not match.
        _of_client(Completion.distress_flagged, Completion.reviewed_at.is_(None))
        .add_columns(func.count())
        .scalar_subquery()
    )
    return Statement(
        select(
            Client.id,
            Client.external_id,
            Client.next_session_at,
            last_completed_at,
            open_flags,
            _helpfulness(func.sum, recent),
            _helpfulness(func.count, recent),
            _helpfulness(func.sum, previous, recent),
            _helpfulness(func.count, previous, recent),
        ).where(Client.tenant_id == param("tenant_id"), Client.id.in_(_team(kind)))
    )


def _occurrence_figures(kind: Context) -> Statement:
    """Per client over the last 28 days: occurrences counted and done (due before now, as
    adherence counts them), and the missed run: every counted occurrence not done that is due
    after the client's latest done one (work done early for later counts: a client who has
    just done tonight's log is no longer missing it)."""
    now, since, team = param("now"), param("since"), _team(kind)
    last_done = (
        select(Occurrence.client_id.label("client_id"), func.max(Occurrence.due_at).label("due_at"))
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
    return Statement(
        select(
            Occurrence.client_id,
            ones(and_(due_before_now, counted(now))),
            ones(and_(due_before_now, is_done())),
            ones(missed_since_last_done),
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


_CLINICIAN = {kind: _clinician(kind) for kind in Context}
_CLIENTS = {kind: _clients(kind) for kind in Context}
_OCCURRENCE_FIGURES = {kind: _occurrence_figures(kind) for kind in Context}


async def caseload(
    session: AsyncSession, principal: Principal, clinician_id: str, now: datetime
) -> tuple[str, list[CaseloadRow]]:
    caller = {
        "tenant_id": principal.tenant_id,
        "subject_id": principal.subject_id,
        "clinician_id": clinician_id,
    }
    if not await _CLINICIAN[principal.kind].scalars(session, **caller):
        raise NotFound("No such clinician.")
    recent_from = now - HELPFULNESS_PERIOD
    clients = await _CLIENTS[principal.kind].fetch(
        session, **caller, recent_from=recent_from, previous_from=recent_from - HELPFULNESS_PERIOD
    )
    occurrence_figures = {
        client_id: (ratio(int(n_done), int(n_counted)), int(n_missed))
        for client_id, n_counted, n_done, n_missed in await _OCCURRENCE_FIGURES[
            principal.kind
        ].fetch(session, **caller, now=now, since=now - CASELOAD_WINDOW)
    }
    rows = []
    for (
        client_id,
        external_id,
        next_session_at,
        last_completed_at,
        flags,
        recent_sum,
        recent_n,
        previous_sum,
        previous_n,
    ) in clients:
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
                last_completed_at=last_completed_at,
            )
        )
    rows.sort(key=CaseloadRow.need)
    await audit.record(
        session, principal, Action.list, "caseload", [(row.client_id, clinician_id) for row in rows]
    )
    return clinician_id, rows
