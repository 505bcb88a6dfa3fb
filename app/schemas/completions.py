from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from app.schemas.common import RequestModel, TimeZoneName

Barrier = Literal[
    "forgot",
    "no_time",
    "too_hard",
    "felt_overwhelmed",
    "not_relevant",
    "unclear_instructions",
    "other",
]
CompletionStatus = Literal["done", "partial", "not_done"]
Scale = Annotated[int, Field(ge=0, le=10)]
MAX_REFLECTION = 4000
MAX_NOTE = 2000


class CompletionFields(RequestModel):
    status: CompletionStatus
    answers: dict[str, Any] | None = Field(
        default=None, description="Valid against the occurrence's template version."
    )
    barriers: list[Barrier] = Field(
        default_factory=list,
        max_length=7,
        description="Why it was not (fully) done; `not_done` needs at least one.",
    )
    barrier_note: str | None = Field(default=None, max_length=MAX_NOTE)
    helpfulness: Scale | None = Field(default=None, description="0 (not at all) to 10.")
    effort: Scale | None = Field(default=None, description="0 (none) to 10 (all I had).")
    minutes_spent: int | None = Field(default=None, ge=0, le=1440)
    reflection: str | None = Field(default=None, max_length=MAX_REFLECTION)


class CompletionCreate(CompletionFields):
    occurrence_id: str = Field(max_length=40)
    completed_at: AwareDatetime | None = Field(
        default=None, description="When the client did it, by their clock (defaults to now)."
    )
    time_zone: TimeZoneName | None = Field(
        default=None, description="The client's zone when they did it (defaults to theirs)."
    )


class CompletionUpdate(CompletionFields):
    """A whole new version of what the client said: the previous one is kept."""


class ReviewCreate(RequestModel):
    feedback: str = Field(min_length=1, max_length=MAX_REFLECTION)


class MeasureOut(BaseModel):
    score: int
    severity: str


class ReviewOut(BaseModel):
    feedback: str
    reviewed_by: str
    reviewed_at: datetime


class CompletionOut(BaseModel):
    id: str
    occurrence_id: str
    assignment_id: str
    client_id: str
    kind: str
    status: CompletionStatus
    answers: dict[str, Any] | None
    barriers: list[Barrier]
    barrier_note: str | None
    helpfulness: int | None
    effort: int | None
    minutes_spent: int | None
    reflection: str | None
    completed_at: datetime
    time_zone: str
    received_at: datetime
    late: bool = Field(description="Done after the occurrence's window had closed.")
    recorded_by: Literal["client", "clinician", "system"]
    in_session: bool
    measure: MeasureOut | None
    distress_flagged: bool
    distress_reasons: list[str] = Field(
        description="Codes, such as `barrier:felt_overwhelmed` or `answer:/item_9`."
    )
    review: ReviewOut | None
    revision: int
    editable_until: datetime
    created_at: datetime
    updated_at: datetime


class CompletionRevisionOut(BaseModel):
    number: int
    recorded_by: str
    created_at: datetime
    content: dict[str, Any]
