"""Adherence, the clinician's caseload and the session summary: read-only figures.

Every figure is defined in docs/ADHERENCE.md; the descriptions here are the short form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.schemas.assignments import AssignmentStatus, OccurrenceStatusName
from app.schemas.completions import Barrier


class AdherenceFigures(BaseModel):
    """How the work due in the window went, for all kinds together or for one kind."""

    counted: int = Field(
        description="Occurrences due in the window that are resolved or whose window has "
        "closed (cancelled ones never count)."
    )
    completed: int = Field(description="Of those, completed or partly completed.")
    completion_rate: float | None = Field(
        description="`completed / counted`; null when nothing is counted."
    )
    on_time: int = Field(description="Of the completed ones, those whose completion is not late.")
    on_time_rate: float | None = Field(
        description="`on_time / completed`; null when nothing was completed."
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
    exposure: list[SudsPoint] = Field(
        description="Exposure practices done or partly done in the window, by `completed_at`."
    )
    measures: MeasureSeries = Field(
        description="PHQ-9 and GAD-7 scores completed in the window, by `completed_at`."
    )

    model_config = {"populate_by_name": True}


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
