from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic.config import JsonDict

from app.schemas.common import (
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CLINICIAN_ID,
    EXAMPLE_COMPLETION_ID,
    EXAMPLE_OCCURRENCE_IDS,
    EXAMPLE_TIME_ZONE,
    Instant,
    RequestModel,
    TimeZoneName,
)

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
Scale = Annotated[StrictInt, Field(ge=0, le=10)]
MAX_REFLECTION = 4000
MAX_NOTE = 2000

# The client's evening mood log (see the assignment examples), as first sent and as edited.
_DONE: JsonDict = {
    "status": "done",
    "answers": {"mood": 6, "emotions": ["calm", "tired"], "note": "A walk after dinner helped."},
    "helpfulness": 7,
    "effort": 3,
    "minutes_spent": 2,
    "reflection": "Writing it down showed me the evening was better than the morning.",
}
_EDITED: JsonDict = {
    **_DONE,
    "answers": {
        "mood": 7,
        "emotions": ["calm", "content", "tired"],
        "note": "A walk after dinner helped.",
    },
    "helpfulness": 8,
}
_NOT_DONE: JsonDict = {
    "status": "not_done",
    "barriers": ["no_time", "felt_overwhelmed"],
    "barrier_note": "Work ran late and I was too drained to start.",
}


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
    minutes_spent: StrictInt | None = Field(default=None, ge=0, le=1440)
    reflection: str | None = Field(default=None, max_length=MAX_REFLECTION)


class CompletionCreate(CompletionFields):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "occurrence_id": EXAMPLE_OCCURRENCE_IDS[0],
                    **_DONE,
                    "completed_at": "2026-11-23T20:12:00-05:00",
                    "time_zone": EXAMPLE_TIME_ZONE,
                },
                {"occurrence_id": EXAMPLE_OCCURRENCE_IDS[1], **_NOT_DONE},
            ]
        }
    )

    occurrence_id: str = Field(max_length=40)
    completed_at: Instant | None = Field(
        default=None,
        description="When the client did it, by their clock (defaults to now). It must lie "
        "between the occurrence's opening and now, each give or take 5 minutes of clock skew; "
        "an import may be older.",
    )
    time_zone: TimeZoneName | None = Field(
        default=None, description="The client's zone when they did it (defaults to theirs)."
    )
    imported: bool = Field(
        default=False,
        description="Your backend only (a system token): history brought from another system. "
        "Any past `completed_at` is accepted; the completion is marked `imported`, audited as "
        "an `import`, and left out of on-time rates.",
    )


class CompletionUpdate(CompletionFields):
    """A whole new version of what the client said: the previous one is kept."""

    model_config = RequestModel.model_config | ConfigDict(json_schema_extra={"examples": [_EDITED]})


_FEEDBACK = "Thank you for logging this. Let's look at what made the evening calmer next time."


class ReviewCreate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"feedback": _FEEDBACK}]}
    )

    feedback: str = Field(min_length=1, max_length=MAX_REFLECTION)


class MeasureOut(BaseModel):
    score: int = Field(description="PHQ-9: 0-27; GAD-7: 0-21.")
    severity: str = Field(
        description="The published band: `minimal`, `mild`, `moderate`, `moderately_severe` "
        "(PHQ-9 only) or `severe`."
    )


class ReviewOut(BaseModel):
    feedback: str
    reviewed_by: str
    reviewed_at: datetime


class CompletionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_COMPLETION_ID,
                    "occurrence_id": EXAMPLE_OCCURRENCE_IDS[0],
                    "assignment_id": EXAMPLE_ASSIGNMENT_ID,
                    "client_id": EXAMPLE_CLIENT_ID,
                    "kind": "mood_log",
                    "status": "done",
                    "answers": _DONE["answers"],
                    "barriers": [],
                    "barrier_note": None,
                    "helpfulness": 7,
                    "effort": 3,
                    "minutes_spent": 2,
                    "reflection": _DONE["reflection"],
                    "completed_at": "2026-11-24T01:12:00Z",
                    "time_zone": EXAMPLE_TIME_ZONE,
                    "received_at": "2026-11-24T01:12:03Z",
                    "late": False,
                    "imported": False,
                    "recorded_by": "client",
                    "in_session": False,
                    "measure": None,
                    "distress_flagged": False,
                    "distress_reasons": [],
                    "review": {
                        "feedback": _FEEDBACK,
                        "reviewed_by": EXAMPLE_CLINICIAN_ID,
                        "reviewed_at": "2026-11-24T14:05:00Z",
                    },
                    "revision": 2,
                    "editable_until": "2026-11-25T01:12:03Z",
                    "created_at": "2026-11-24T01:12:03Z",
                    "updated_at": "2026-11-24T14:05:00Z",
                }
            ]
        }
    )

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
    imported: bool = Field(
        description="Brought from another system by your backend; left out of on-time rates."
    )
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": 1,
                    "recorded_by": "client",
                    "created_at": "2026-11-24T01:12:03Z",
                    "content": {
                        "answers": _DONE["answers"],
                        "barrier_note": None,
                        "barriers": [],
                        "effort": 3,
                        "helpfulness": 7,
                        "minutes_spent": 2,
                        "reflection": _DONE["reflection"],
                        "status": "done",
                    },
                }
            ]
        }
    )

    number: int
    recorded_by: str
    created_at: datetime
    content: dict[str, Any]
