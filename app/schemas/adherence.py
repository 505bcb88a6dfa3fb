"""Adherence, the clinician's caseload and the session summary: read-only figures.

Every figure is defined in docs/ADHERENCE.md; the descriptions here are the short form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.schemas.assignments import AssignmentStatus, OccurrenceStatusName
from app.schemas.common import (
    EXAMPLE_ADJUSTMENT_ID,
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CLINICIAN_ID,
    EXAMPLE_COMPLETION_ID,
    EXAMPLE_OCCURRENCE_IDS,
)
from app.schemas.completions import Barrier

# The examples' client: an evening mood log and an exposure ladder (taking the bus again).
_EXPOSURE_ASSIGNMENT_ID = "asg_01jd0c2e4g6j8m0p2r4t6w8y0a"
_EXPOSURE_OCCURRENCE_ID = "occ_01jd0c2e4h7k0n3q6s9v2x5z8b"
_EXPOSURE_COMPLETION_ID = "cmp_01jd4g6j8m0p2r4t6w8y0b2d4f"
_PHQ9_COMPLETION_IDS = ("cmp_01jd0e2g4j6m8p0r2t4w6y8a0c", "cmp_01jd1f3h5k7n9q1s3v5x7z9b1d")
_NO_BARRIERS = {
    "forgot": 0,
    "no_time": 0,
    "too_hard": 0,
    "felt_overwhelmed": 0,
    "not_relevant": 0,
    "unclear_instructions": 0,
    "other": 0,
}


def _figures_example(
    counted: int,
    completed: int,
    on_time: int,
    streaks: tuple[int, int],
    helpfulness: tuple[float, int],
    barriers: dict[str, int],
) -> JsonDict:
    return {
        "counted": counted,
        "completed": completed,
        "completion_rate": round(completed / counted, 4),
        "on_time": on_time,
        "imported": 0,
        "on_time_rate": round(on_time / completed, 4),
        "current_streak": streaks[0],
        "best_streak": streaks[1],
        "mean_helpfulness": helpfulness[0],
        "rated": helpfulness[1],
        "barriers": {**_NO_BARRIERS, **barriers},
    }


_OVERALL = _figures_example(
    20, 15, 13, (4, 6), (6.42, 12), {"forgot": 2, "no_time": 3, "felt_overwhelmed": 1}
)
_MOOD_LOG = _figures_example(14, 11, 10, (3, 5), (6.11, 9), {"forgot": 2, "no_time": 2})
_EXPOSURE = _figures_example(6, 4, 3, (1, 2), (7.33, 3), {"no_time": 1, "felt_overwhelmed": 1})


class AdherenceFigures(BaseModel):
    """How the work due in the window went, for all kinds together or for one kind."""

    model_config = ConfigDict(json_schema_extra={"examples": [_OVERALL]})

    counted: int = Field(
        description="Occurrences due in the window that are resolved or whose window has "
        "closed (cancelled ones never count)."
    )
    completed: int = Field(description="Of those, completed or partly completed.")
    completion_rate: float | None = Field(
        description="`completed / counted`; null when nothing is counted."
    )
    on_time: int = Field(
        description="Of the completed ones recorded here, those whose completion is not late."
    )
    imported: int = Field(
        description="Of the completed ones, those your backend imported from another system: "
        "their times are not this service's to judge, so they are left out of the on-time rate."
    )
    on_time_rate: float | None = Field(
        description="`on_time / (completed - imported)`; null when nothing was completed here."
    )
    current_streak: int = Field(
        description="Completed or partial occurrences in a row, by due time, ending at the "
        "latest counted one (0 if that one was not done)."
    )
    best_streak: int = Field(description="The longest such run in the window.")
    mean_helpfulness: float | None = Field(
        description="Mean helpfulness (0-10) of the completions of occurrences due in the "
        "window, to two decimals; null when none was rated."
    )
    rated: int = Field(description="How many completions gave a helpfulness rating.")
    barriers: dict[Barrier, int] = Field(
        description="Each barrier code, with the number of completions that reported it."
    )


class WeekFigures(BaseModel):
    """One week of the window: seven days from the window's start (the last may be shorter)."""

    start: datetime = Field(description="The week's start (inclusive).")
    end: datetime = Field(description="The week's end (exclusive).")
    counted: int = Field(description="Counted occurrences due in the week.")
    completed: int = Field(description="Of those, completed or partly completed.")
    completion_rate: float | None = Field(
        description="`completed / counted`; null when nothing is counted."
    )


def _week_example(start: str, end: str, counted: int, completed: int) -> JsonDict:
    return {
        "start": start,
        "end": end,
        "counted": counted,
        "completed": completed,
        "completion_rate": round(completed / counted, 4),
    }


class SudsPoint(BaseModel):
    """One exposure practice: the step and its distress (SUDS 0-100) before, at peak, after."""

    completion_id: str
    completed_at: datetime
    status: str = Field(description="`done` or `partial` (a partial one may lack ratings).")
    step: str | None = Field(description="The step of the fear hierarchy, as the client wrote it.")
    suds_before: int | None
    suds_peak: int | None
    suds_after: int | None


class MeasurePoint(BaseModel):
    completion_id: str
    completed_at: datetime
    score: int
    severity: str


class MeasureSeries(BaseModel):
    phq9: list[MeasurePoint]
    gad7: list[MeasurePoint]


class AdherenceOut(BaseModel):
    client_id: str
    from_: datetime = Field(alias="from", description="The window's start (inclusive).")
    to: datetime = Field(description="The window's end (exclusive).")
    as_of: datetime = Field(description="The time the figures were computed at.")
    overall: AdherenceFigures
    by_kind: dict[str, AdherenceFigures] = Field(
        description="The same figures per homework kind that had an occurrence due in the window."
    )
    by_week: list[WeekFigures] = Field(
        description="The completion rate week by week: the window cut into seven-day weeks "
        "from its start, every week listed (with zeros when nothing was counted in it)."
    )
    exposure: list[SudsPoint] = Field(
        description="Exposure practices done or partly done in the window, by `completed_at`."
    )
    measures: MeasureSeries = Field(
        description="PHQ-9 and GAD-7 scores completed in the window, by `completed_at`."
    )

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "client_id": EXAMPLE_CLIENT_ID,
                    "from": "2026-10-27T16:00:00Z",
                    "to": "2026-11-24T16:00:00Z",
                    "as_of": "2026-11-24T16:00:00Z",
                    "overall": _OVERALL,
                    "by_kind": {"exposure": _EXPOSURE, "mood_log": _MOOD_LOG},
                    "by_week": [
                        _week_example("2026-10-27T16:00:00Z", "2026-11-03T16:00:00Z", 5, 4),
                        _week_example("2026-11-03T16:00:00Z", "2026-11-10T16:00:00Z", 5, 4),
                        _week_example("2026-11-10T16:00:00Z", "2026-11-17T16:00:00Z", 5, 3),
                        _week_example("2026-11-17T16:00:00Z", "2026-11-24T16:00:00Z", 5, 4),
                    ],
                    "exposure": [
                        {
                            "completion_id": "cmp_01jd1g4j7m0q3s6w9z2c5f8h1k",
                            "completed_at": "2026-11-13T23:40:00Z",
                            "status": "done",
                            "step": "Stand at the bus stop for ten minutes",
                            "suds_before": 60,
                            "suds_peak": 75,
                            "suds_after": 30,
                        },
                        {
                            "completion_id": "cmp_01jd3a5c7e9g1j3m5p7r9t1v3x",
                            "completed_at": "2026-11-20T23:15:00Z",
                            "status": "done",
                            "step": "Ride the bus for one stop",
                            "suds_before": 70,
                            "suds_peak": 85,
                            "suds_after": 35,
                        },
                    ],
                    "measures": {
                        "phq9": [
                            {
                                "completion_id": _PHQ9_COMPLETION_IDS[0],
                                "completed_at": "2026-11-02T14:50:00Z",
                                "score": 12,
                                "severity": "moderate",
                            },
                            {
                                "completion_id": _PHQ9_COMPLETION_IDS[1],
                                "completed_at": "2026-11-16T14:55:00Z",
                                "score": 9,
                                "severity": "mild",
                            },
                        ],
                        "gad7": [],
                    },
                }
            ]
        },
    )


class CaseloadRow(BaseModel):
    client_id: str
    external_id: str
    open_distress_flags: int = Field(description="Flagged completions not reviewed yet.")
    missed_in_a_row: int = Field(
        description="Counted occurrences not done (missed, declined, or past their window) due "
        "in the last 28 days after the latest one done or partly done: the current run."
    )
    helpfulness_recent: float | None = Field(
        description="Mean helpfulness of completions in the last 7 days."
    )
    helpfulness_previous: float | None = Field(
        description="Mean helpfulness of completions in the 7 days before those."
    )
    helpfulness_trend: float | None = Field(
        description="`helpfulness_recent - helpfulness_previous`; null unless both are known."
    )
    completion_rate_28d: float | None = Field(
        description="The completion rate over the last 28 days (see adherence)."
    )
    last_completed_at: datetime | None = Field(
        description="The latest completion that was done or partly done, ever."
    )
    next_session_at: datetime | None


class CaseloadOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "clinician_id": EXAMPLE_CLINICIAN_ID,
                    "as_of": "2026-11-24T16:00:00Z",
                    "clients": [
                        {
                            "client_id": EXAMPLE_CLIENT_ID,
                            "external_id": "patient-4821",
                            "open_distress_flags": 1,
                            "missed_in_a_row": 2,
                            "helpfulness_recent": 5.5,
                            "helpfulness_previous": 7.0,
                            "helpfulness_trend": -1.5,
                            "completion_rate_28d": 0.75,
                            "last_completed_at": "2026-11-24T01:12:00Z",
                            "next_session_at": "2026-11-30T15:00:00Z",
                        },
                        {
                            "client_id": "clt_01jd3y2b4d6f8h0k2n4q6s8v0x",
                            "external_id": "patient-5307",
                            "open_distress_flags": 0,
                            "missed_in_a_row": 0,
                            "helpfulness_recent": 8.0,
                            "helpfulness_previous": None,
                            "helpfulness_trend": None,
                            "completion_rate_28d": 0.9,
                            "last_completed_at": "2026-11-24T12:30:00Z",
                            "next_session_at": None,
                        },
                    ],
                }
            ]
        }
    )

    clinician_id: str
    as_of: datetime
    clients: list[CaseloadRow] = Field(
        description="Most in need first: open distress flags (more first), then missed in a "
        "row (more first), then helpfulness trend (most negative first, unknown as 0), then "
        "client id."
    )


class AssignedItem(BaseModel):
    assignment_id: str
    title: str
    kind: str
    status: AssignmentStatus
    created_at: datetime


class SummaryItem(BaseModel):
    """One occurrence, with what the client said about it."""

    occurrence_id: str
    assignment_id: str
    title: str
    kind: str
    due_at: datetime
    status: OccurrenceStatusName = Field(
        description="The occurrence's status; an unresolved one whose window closed is "
        "reported as `missed`."
    )
    completion_id: str | None
    completed_at: datetime | None
    late: bool | None
    helpfulness: int | None
    barriers: list[Barrier]
    barrier_note: str | None


class SummaryCounts(BaseModel):
    done: int
    partly_done: int
    not_done: int


class DistressFlag(BaseModel):
    completion_id: str
    occurrence_id: str
    kind: str
    completed_at: datetime
    reasons: list[str] = Field(description="Codes, such as `barrier:felt_overwhelmed`.")
    reviewed: bool
    reviewed_at: datetime | None


class AdjustmentItem(BaseModel):
    adjustment_id: str
    assignment_id: str
    title: str = Field(description="The assignment's title now.")
    status: str
    proposed: dict[str, Any]
    note: str | None
    created_at: datetime
    resolved_at: datetime | None


class LatestMeasure(BaseModel):
    completion_id: str
    completed_at: datetime
    score: int
    severity: str
    previous_score: int | None
    previous_severity: str | None
    change: int | None = Field(description="`score - previous_score`; negative is better.")


class LatestMeasures(BaseModel):
    phq9: LatestMeasure | None
    gad7: LatestMeasure | None


class SessionSummaryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": EXAMPLE_CLIENT_ID,
                    "since": "2026-11-17T16:00:00Z",
                    "until": "2026-11-24T16:00:00Z",
                    "next_session_at": "2026-11-30T15:00:00Z",
                    "assigned": [
                        {
                            "assignment_id": EXAMPLE_ASSIGNMENT_ID,
                            "title": "Evening mood log",
                            "kind": "mood_log",
                            "status": "active",
                            "created_at": "2026-11-23T15:30:00Z",
                        }
                    ],
                    "counts": {"done": 1, "partly_done": 0, "not_done": 1},
                    "done": [
                        {
                            "occurrence_id": EXAMPLE_OCCURRENCE_IDS[0],
                            "assignment_id": EXAMPLE_ASSIGNMENT_ID,
                            "title": "Evening mood log",
                            "kind": "mood_log",
                            "due_at": "2026-11-24T01:00:00Z",
                            "status": "completed",
                            "completion_id": EXAMPLE_COMPLETION_ID,
                            "completed_at": "2026-11-24T01:12:00Z",
                            "late": False,
                            "helpfulness": 7,
                            "barriers": [],
                            "barrier_note": None,
                        }
                    ],
                    "partly_done": [],
                    "not_done": [
                        {
                            "occurrence_id": _EXPOSURE_OCCURRENCE_ID,
                            "assignment_id": _EXPOSURE_ASSIGNMENT_ID,
                            "title": "Ride the bus for two stops",
                            "kind": "exposure",
                            "due_at": "2026-11-22T23:00:00Z",
                            "status": "declined",
                            "completion_id": _EXPOSURE_COMPLETION_ID,
                            "completed_at": "2026-11-22T23:20:00Z",
                            "late": False,
                            "helpfulness": None,
                            "barriers": ["no_time", "felt_overwhelmed"],
                            "barrier_note": "Work ran late and I was too drained to start.",
                        }
                    ],
                    "distress_flags": [
                        {
                            "completion_id": _EXPOSURE_COMPLETION_ID,
                            "occurrence_id": _EXPOSURE_OCCURRENCE_ID,
                            "kind": "exposure",
                            "completed_at": "2026-11-22T23:20:00Z",
                            "reasons": ["barrier:felt_overwhelmed"],
                            "reviewed": False,
                            "reviewed_at": None,
                        }
                    ],
                    "adjustments": [
                        {
                            "adjustment_id": EXAMPLE_ADJUSTMENT_ID,
                            "assignment_id": EXAMPLE_ASSIGNMENT_ID,
                            "title": "Evening mood log",
                            "status": "proposed",
                            "proposed": {"rrule": "FREQ=DAILY;INTERVAL=2;COUNT=3"},
                            "note": "Weekday evenings are busy; every other evening feels doable.",
                            "created_at": "2026-11-24T02:10:00Z",
                            "resolved_at": None,
                        }
                    ],
                    "mean_helpfulness": 7.0,
                    "rated": 1,
                    "measures": {
                        "phq9": {
                            "completion_id": _PHQ9_COMPLETION_IDS[1],
                            "completed_at": "2026-11-16T14:55:00Z",
                            "score": 9,
                            "severity": "mild",
                            "previous_score": 12,
                            "previous_severity": "moderate",
                            "change": -3,
                        },
                        "gad7": None,
                    },
                }
            ]
        }
    )

    client_id: str
    since: datetime
    until: datetime
    next_session_at: datetime | None
    assigned: list[AssignedItem] = Field(description="Assignments created since, oldest first.")
    counts: SummaryCounts
    done: list[SummaryItem]
    partly_done: list[SummaryItem]
    not_done: list[SummaryItem] = Field(
        description="Declined (with barriers), missed, or past their window without a completion."
    )
    distress_flags: list[DistressFlag] = Field(
        description="Flags on completions made since, and every flag still unreviewed."
    )
    adjustments: list[AdjustmentItem] = Field(
        description="Adjustments proposed or resolved since, oldest first."
    )
    mean_helpfulness: float | None = Field(
        description="Of completions made since, to two decimals."
    )
    rated: int
    measures: LatestMeasures = Field(
        description="The latest PHQ-9 and GAD-7 ever, with the change from the one before."
    )
