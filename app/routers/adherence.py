"""Adherence, the clinician's caseload and the session summary. Read-only; see
docs/ADHERENCE.md for every definition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.schemas.adherence import (
    AdherenceFigures,
    AdherenceOut,
    AdjustmentItem,
    AssignedItem,
    CaseloadOut,
    CaseloadRow,
    DistressFlag,
    LatestMeasure,
    LatestMeasures,
    MeasurePoint,
    MeasureSeries,
    SessionSummaryOut,
    SudsPoint,
    SummaryCounts,
    SummaryItem,
)
from app.schemas.common import Instant
from app.services import adherence, caseload, session_summary

router = APIRouter(prefix="/v1", tags=["adherence"], route_class=AppRoute)
ClientId = Annotated[str, Path(max_length=40)]
ClinicianId = Annotated[str, Path(max_length=40)]


def _figures(figures: adherence.Figures) -> AdherenceFigures:
    return AdherenceFigures(
        counted=figures.counted,
        completed=figures.completed,
        completion_rate=figures.completion_rate,
        on_time=figures.on_time,
        imported=figures.imported,
        on_time_rate=figures.on_time_rate,
        current_streak=figures.current_streak,
        best_streak=figures.best_streak,
        mean_helpfulness=figures.mean_helpfulness,
        rated=figures.rated,
        barriers=figures.barriers,
    )


def _measure_points(result: adherence.Adherence, kind: str) -> list[MeasurePoint]:
    return [
        MeasurePoint(
            completion_id=m.completion_id,
            completed_at=m.completed_at,
            score=m.score,
            severity=m.severity,
        )
        for m in result.measures
        if m.kind == kind
    ]


@router.get(
    "/clients/{client_id}/adherence",
    operation_id="get_adherence",
    summary="How a client's homework went over a window",
    description="Completion and on-time rates, current and best streaks, mean helpfulness "
    "and barrier counts, overall and per kind; the exposure SUDS series and the PHQ-9 and "
    "GAD-7 scores. The window defaults to the last 28 days ending now and spans at most 366 "
    "days. The client reads their own; a clinician their care team's.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_adherence(
    client_id: ClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("adherence", "r")],
    now: NowDep,
    start: Annotated[
        Instant | None,
        Query(alias="from", description="The window's start, an instant (inclusive)."),
    ] = None,
    end: Annotated[
        Instant | None,
        Query(alias="to", description="The window's end, an instant (exclusive)."),
    ] = None,
) -> AdherenceOut:
    result = await adherence.adherence(session, principal, client_id, start=start, end=end, now=now)
    return AdherenceOut.model_validate(
        {
            "client_id": result.client_id,
            "from": result.start,
            "to": result.end,
            "as_of": result.as_of,
            "overall": _figures(result.overall),
            "by_kind": {kind: _figures(f) for kind, f in result.by_kind.items()},
            "exposure": [
                SudsPoint(
                    completion_id=p.completion_id,
                    completed_at=p.completed_at,
                    status=p.status,
                    step=p.step,
                    suds_before=p.suds_before,
                    suds_peak=p.suds_peak,
                    suds_after=p.suds_after,
                )
                for p in result.exposure
            ],
            "measures": MeasureSeries(
                phq9=_measure_points(result, "phq9"), gad7=_measure_points(result, "gad7")
            ),
        }
    )


@router.get(
    "/clinicians/{clinician_id}/caseload",
    operation_id="get_caseload",
    summary="A clinician's clients, most in need first",
    description="Every client on the clinician's care teams, ordered by open distress flags, "
    "then missed in a row, then falling helpfulness. A clinician reads their own caseload; "
    "the vendor's backend any clinician's.",
    responses=problem_responses(401, 403, 404),
)
async def get_caseload(
    clinician_id: ClinicianId,
    session: SessionDep,
    principal: Annotated[Principal, require("adherence", "s")],
    now: NowDep,
) -> CaseloadOut:
    clinician, rows = await caseload.caseload(session, principal, clinician_id, now)
    return CaseloadOut(
        clinician_id=clinician,
        as_of=now,
        clients=[
            CaseloadRow(
                client_id=row.client_id,
                external_id=row.external_id,
                open_distress_flags=row.open_distress_flags,
                missed_in_a_row=row.missed_in_a_row,
                helpfulness_recent=row.helpfulness_recent,
                helpfulness_previous=row.helpfulness_previous,
                helpfulness_trend=row.helpfulness_trend,
                completion_rate_28d=row.completion_rate_28d,
                last_completed_at=row.last_completed_at,
                next_session_at=row.next_session_at,
            )
            for row in rows
        ],
    )


def _item(item: session_summary.Item) -> SummaryItem:
    return SummaryItem.model_validate(item, from_attributes=True)


def _latest(measure: session_summary.Measure | None) -> LatestMeasure | None:
    if measure is None:
        return None
    return LatestMeasure(
        completion_id=measure.completion_id,
        completed_at=measure.completed_at,
        score=measure.score,
        severity=measure.severity,
        previous_score=measure.previous_score,
        previous_severity=measure.previous_severity,
        change=measure.change,
    )


@router.get(
    "/clients/{client_id}/session-summary",
    operation_id="get_session_summary",
    summary="What to read before a session",
    description="Since `since` (default: 7 days before now): what was assigned; what was done, "
    "partly done and not done, with helpfulness and barriers; distress flags; adjustments; "
    "mean helpfulness; the latest PHQ-9 and GAD-7 with the change from the previous score.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_session_summary(
    client_id: ClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("adherence", "r")],
    now: NowDep,
    since: Annotated[
        Instant | None,
        Query(description="An instant; defaults to 7 days before now, at most 366 days ago."),
    ] = None,
) -> SessionSummaryOut:
    result = await session_summary.summary(session, principal, client_id, since=since, now=now)
    return SessionSummaryOut(
        client_id=result.client_id,
        since=result.since,
        until=result.until,
        next_session_at=result.next_session_at,
        assigned=[AssignedItem.model_validate(a, from_attributes=True) for a in result.assigned],
        counts=SummaryCounts(
            done=len(result.done),
            partly_done=len(result.partly_done),
            not_done=len(result.not_done),
        ),
        done=[_item(i) for i in result.done],
        partly_done=[_item(i) for i in result.partly_done],
        not_done=[_item(i) for i in result.not_done],
        distress_flags=[
            DistressFlag(
                completion_id=f.completion_id,
                occurrence_id=f.occurrence_id,
                kind=f.kind,
                completed_at=f.completed_at,
                reasons=f.reasons,
                reviewed=f.reviewed_at is not None,
                reviewed_at=f.reviewed_at,
            )
            for f in result.distress_flags
        ],
        adjustments=[
            AdjustmentItem.model_validate(a, from_attributes=True) for a in result.adjustments
        ],
        mean_helpfulness=result.mean_helpfulness,
        rated=result.rated,
        measures=LatestMeasures(
            phq9=_latest(result.measures.get("phq9")), gad7=_latest(result.measures.get("gad7"))
        ),
    )
