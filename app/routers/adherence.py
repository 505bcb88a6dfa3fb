"""Adherence, the clinician's caseload and the session summary. Read-only; see
docs/ADHERENCE.md for every definition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from starlette.concurrency import run_in_threadpool

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
    WeekFigures,
)
from app.schemas.common import EXAMPLE_CLIENT_ID, Instant
from app.services import adherence, adherence_chart, caseload, session_summary

router = APIRouter(prefix="/v1", tags=["adherence"], route_class=AppRoute)
ClientId = Annotated[str, Path(max_length=40)]
ClinicianId = Annotated[str, Path(max_length=40)]
WindowStart = Annotated[
    Instant | None, Query(alias="from", description="The window's start, an instant (inclusive).")
]
WindowEnd = Annotated[
    Instant | None, Query(alias="to", description="The window's end, an instant (exclusive).")
]


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


async def _read_adherence(
    client_id: ClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("adherence", "r")],
    now: NowDep,
    start: WindowStart = None,
    end: WindowEnd = None,
) -> adherence.Adherence:
    """What both adherence routes answer with, the JSON and the picture: one set of parameters,
    one scope, one visibility check, one audit (`adherence.adherence` records the read)."""
    return await adherence.adherence(session, principal, client_id, start=start, end=end, now=now)


AdherenceRead = Annotated[adherence.Adherence, Depends(_read_adherence)]


@router.get(
    "/clients/{client_id}/adherence",
    operation_id="get_adherence",
    summary="How a client's homework went over a window",
    description="Completion and on-time rates, current and best streaks, mean helpfulness "
    "and barrier counts, overall and per kind; the completion rate week by week; the exposure "
    "SUDS series and the PHQ-9 and GAD-7 scores. The window defaults to the last 28 days "
    "ending now and spans at most 366 days. The client reads their own; a clinician their care "
    "team's. `GET /v1/clients/{client_id}/adherence.svg` draws the same figures.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_adherence(result: AdherenceRead) -> AdherenceOut:
    return AdherenceOut.model_validate(
        {
            "client_id": result.client_id,
            "from": result.start,
            "to": result.end,
            "as_of": result.as_of,
            "overall": _figures(result.overall),
            "by_kind": {kind: _figures(f) for kind, f in result.by_kind.items()},
            "by_week": [
                WeekFigures.model_validate(week, from_attributes=True) for week in result.by_week
            ],
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


SVG_MEDIA_TYPE = "image/svg+xml"
# An SVG opened on its own is a document: it may use its inline <style> (pygal's), and load,
# run or be framed by nothing.
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
CHART_HEADERS = {
    "Content-Security-Policy": CHART_CSP,
    "Cache-Control": "private, no-store",  # health data: kept by no browser, proxy or CDN
}  # and X-Content-Type-Options: nosniff, which app.core.security_headers sets on every answer
CHART_EXAMPLE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 1284" width="800" height="1284" '
    f'role="img"><title>Homework adherence of client {EXAMPLE_CLIENT_ID}, '
    "27 Oct 2026 to 24 Nov 2026 (UTC)</title>"
    '<svg x="0" y="84" width="800" height="300" data-panel="completion" '
    'viewBox="0 0 800 300">…</svg>…</svg>'
)


class SvgResponse(Response):
    media_type = SVG_MEDIA_TYPE


def _header(description: str) -> dict[str, object]:
    return {"description": description, "schema": {"type": "string"}}


@router.get(
    "/clients/{client_id}/adherence.svg",
    operation_id="get_adherence_chart",
    summary="A client's adherence as a picture (SVG)",
    description="The figures of `GET /v1/clients/{client_id}/adherence`, for the same window, "
    "drawn as one SVG image of four panels: completion by week, helpfulness by kind, SUDS "
    "before, at peak and after each exposure practice, and PHQ-9 and GAD-7 over time on their "
    "severity bands. Made to be embedded in a clinician's view or attached to an email to the "
    "clinician: it carries the client's id, dates and figures, never a name, a note or the "
    "client's own words; it has no script and loads nothing. Same scopes, visibility and "
    "audit as the JSON read (one `read` event, `resource_type` `adherence`).",
    response_class=SvgResponse,
    responses={
        200: {
            "description": "An SVG document (UTF-8). A client with nothing recorded yet gets "
            "the same four panels, each saying `no data yet`.",
            "content": {SVG_MEDIA_TYPE: {"schema": {"type": "string"}, "example": CHART_EXAMPLE}},
            "headers": {
                "Content-Security-Policy": _header(f"`{CHART_CSP}`"),
                "Cache-Control": _header("`private, no-store`: the picture is health data."),
                "X-Content-Type-Options": _header("`nosniff`."),
            },
        },
        **problem_responses(401, 403, 404, 422),
    },
)
async def get_adherence_chart(result: AdherenceRead, session: SessionDep) -> Response:
    """A route of its own rather than `Accept: image/svg+xml` on the JSON route: an `<img src>`
    or a mail client cannot send an Accept header, the JSON operation keeps one response model
    (and the generated clients one type), and a URL names what it answers with.

    The figures, the parameters, the visibility check and the audit are the JSON route's own
    (`_read_adherence`). They are committed before the drawing, which is CPU work for a
    worker thread (about 0.1 s): the drawing holds no database connection and no event loop.
    """
    await session.commit()
    svg = await run_in_threadpool(adherence_chart.render, result)
    return SvgResponse(svg, headers=CHART_HEADERS)


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
