from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.config import JsonDict, JsonValue

from app.schemas.common import (
    EXAMPLE_ADJUSTMENT_ID,
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CLINICIAN_ID,
    EXAMPLE_MOOD_LOG_VERSION_ID,
    EXAMPLE_OCCURRENCE_IDS,
    EXAMPLE_TIME_ZONE,
    LocalOrInstant,
    LocalTime,
    LocalWallClock,
    RequestModel,
)
from app.services.template_catalog import BUILTIN_TEMPLATES

Title = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=10_000)]
DifficultyStep = Annotated[
    StrictInt,
    Field(
        ge=1, le=10, description="Where this sits on the client's ladder: 1 is the smallest step."
    ),
]
AssignmentStatus = Literal["active", "completed", "cancelled", "expired"]
OccurrenceStatusName = Literal[
    "upcoming", "open", "started", "completed", "partial", "missed", "declined", "cancelled"
]


# The examples follow one assignment: an evening mood log, three days in a row, in New York.
_MOOD_LOG = BUILTIN_TEMPLATES["mood_log"]
OCCURRENCE_EXAMPLES: list[JsonValue] = [
    {
        "id": EXAMPLE_OCCURRENCE_IDS[0],
        "assignment_id": EXAMPLE_ASSIGNMENT_ID,
        "ordinal": 0,
        "status": "open",
        "due_at": "2026-11-24T01:00:00Z",
        "opens_at": "2026-11-23T15:30:00Z",
        "closes_at": "2026-11-24T13:00:00Z",
        "local_due": "2026-11-23T20:00",
        "time_zone": EXAMPLE_TIME_ZONE,
    },
    {
        "id": EXAMPLE_OCCURRENCE_IDS[1],
        "assignment_id": EXAMPLE_ASSIGNMENT_ID,
        "ordinal": 1,
        "status": "upcoming",
        "due_at": "2026-11-25T01:00:00Z",
        "opens_at": "2026-11-24T13:00:00Z",
        "closes_at": "2026-11-25T13:00:00Z",
        "local_due": "2026-11-24T20:00",
        "time_zone": EXAMPLE_TIME_ZONE,
    },
    {
        "id": EXAMPLE_OCCURRENCE_IDS[2],
        "assignment_id": EXAMPLE_ASSIGNMENT_ID,
        "ordinal": 2,
        "status": "upcoming",
        "due_at": "2026-11-26T01:00:00Z",
        "opens_at": "2026-11-25T13:00:00Z",
        "closes_at": "2026-11-26T13:00:00Z",
        "local_due": "2026-11-25T20:00",
        "time_zone": EXAMPLE_TIME_ZONE,
    },
]
_TITLE = "Evening mood log"
_PURPOSE = "To see whether the evenings you go for a walk feel different from the others."
_REMINDERS: JsonDict = {"local_times": ["20:00"], "only_if_not_done": True}
ASSIGNMENT_EXAMPLE: JsonDict = {
    "id": EXAMPLE_ASSIGNMENT_ID,
    "client_id": EXAMPLE_CLIENT_ID,
    "clinician_id": EXAMPLE_CLINICIAN_ID,
    "template": {"id": "tpl_builtin_mood_log", "version_id": EXAMPLE_MOOD_LOG_VERSION_ID},
    "kind": "mood_log",
    "title": _TITLE,
    "instructions": _MOOD_LOG.instructions,
    "purpose": _PURPOSE,
    "difficulty_step": 1,
    "status": "active",
    "schedule": {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=3",
        "start_local": "2026-11-23T20:00",
        "due_at": None,
    },
    "window": {"opens_before_minutes": 720, "grace_minutes": 720},
    "reminders": {
        "local_times": ["20:00"],
        "lead_minutes": [],
        "only_if_not_done": True,
        "max_per_day": None,
        "enabled": True,
    },
    "created_at": "2026-11-23T15:30:00Z",
    "updated_at": "2026-11-23T15:30:00Z",
    "occurrences": OCCURRENCE_EXAMPLES,
}


class OnceSchedule(RequestModel):
    type: Literal["once"]
    due_at: LocalOrInstant = Field(
        description="With an offset, that instant; without one, the client's local wall-clock "
        "time (`2026-11-25T20:00` is 20:00 where the client is).",
        examples=["2026-11-25T20:00"],
    )


class RecurringSchedule(RequestModel):
    type: Literal["recurring"]
    rrule: str = Field(
        max_length=512,
        description="RFC 5545 subset in the client's local time: FREQ=DAILY|WEEKLY, INTERVAL, "
        "BYDAY, BYHOUR, BYMINUTE, COUNT or UNTIL.",
        examples=["FREQ=DAILY;COUNT=7;BYHOUR=20;BYMINUTE=0"],
    )
    start: LocalOrInstant = Field(
        description="The series' first local wall-clock time (no offset), or an instant.",
        examples=["2026-11-23T20:00"],
    )


class BeforeNextSessionSchedule(RequestModel):
    type: Literal["before_next_session"]


Schedule = Annotated[
    OnceSchedule | RecurringSchedule | BeforeNextSessionSchedule, Field(discriminator="type")
]


class Window(RequestModel):
    opens_before_minutes: StrictInt = Field(
        default=720,
        ge=0,
        le=10_080,
        description="How long before its due time a recurring occurrence opens.",
    )
    grace_minutes: StrictInt = Field(
        default=720, ge=0, le=10_080, description="How long after its due time it can be done."
    )


class ReminderPolicyIn(RequestModel):
    """When to nudge the client about each occurrence. Without one, the template's defaults
    apply: its local times of day (a daily log at 20:00), else an hour before each due time."""

    local_times: list[LocalTime] = Field(
        default_factory=list, max_length=6, description="Local times of day on the due date."
    )
    lead_minutes: list[Annotated[StrictInt, Field(ge=0, le=10_080)]] = Field(
        default_factory=list, max_length=6, description="Minutes before each due time."
    )
    only_if_not_done: StrictBool = Field(default=True, description="Stop once the work is done.")
    max_per_day: StrictInt | None = Field(default=None, ge=1, le=24, description="Per local day.")
    enabled: StrictBool = True


class AssignmentCreate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": EXAMPLE_CLIENT_ID,
                    "template_id": "tpl_builtin_mood_log",
                    "title": _TITLE,
                    "purpose": _PURPOSE,
                    "difficulty_step": 1,
                    "schedule": {
                        "type": "recurring",
                        "rrule": "FREQ=DAILY;COUNT=3",
                        "start": "2026-11-23T20:00",
                    },
                    "reminders": _REMINDERS,
                },
                {
                    "client_id": EXAMPLE_CLIENT_ID,
                    "clinician_id": EXAMPLE_CLINICIAN_ID,
                    "template_id": "tpl_builtin_exposure",
                    "title": "Ride the bus for two stops",
                    "purpose": "A step towards taking the bus to work again.",
                    "difficulty_step": 3,
                    "schedule": {"type": "once", "due_at": "2026-11-27T18:00"},
                    "window": {"grace_minutes": 1440},
                },
                {
                    "client_id": EXAMPLE_CLIENT_ID,
                    "template_id": "tpl_builtin_phq9",
                    "schedule": {"type": "before_next_session"},
                },
            ]
        }
    )

    client_id: str = Field(max_length=40)
    clinician_id: str | None = Field(
        default=None,
        max_length=40,
        description="Who assigns it. Required for system callers; a clinician assigns as themself.",
    )
    template_id: str = Field(max_length=60, examples=["tpl_builtin_mood_log"])
    title: Title | None = Field(default=None, description="Defaults to the template's name.")
    instructions: LongText | None = Field(
        default=None, description="Defaults to the template's instructions."
    )
    purpose: LongText | None = Field(
        default=None, description="Why this matters to the client, in words they chose."
    )
    difficulty_step: DifficultyStep | None = None
    schedule: Schedule
    window: Window = Window()
    reminders: ReminderPolicyIn | None = None


class AssignmentUpdate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "difficulty_step": 2,
                    "schedule": {
                        "type": "recurring",
                        "rrule": "FREQ=DAILY;COUNT=5",
                        "start": "2026-11-24T20:00",
                    },
                    "reminders": {"local_times": ["19:30"]},
                }
            ]
        }
    )

    title: Title | None = None
    instructions: LongText | None = None
    purpose: LongText | None = None
    difficulty_step: DifficultyStep | None = None
    schedule: Schedule | None = None
    window: Window | None = None
    reminders: ReminderPolicyIn | None = None


class ScheduleOut(BaseModel):
    type: Literal["once", "recurring", "before_next_session"]
    rrule: str | None
    start_local: LocalWallClock | None
    due_at: datetime | None


class TemplateRef(BaseModel):
    id: str
    version_id: str


class OccurrenceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [OCCURRENCE_EXAMPLES[0]]})

    id: str
    assignment_id: str
    ordinal: int
    status: OccurrenceStatusName
    due_at: datetime
    opens_at: datetime
    closes_at: datetime
    local_due: LocalWallClock = Field(
        description="The due time on the client's clock, `YYYY-MM-DDTHH:MM`."
    )
    time_zone: str


class AssignmentOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ASSIGNMENT_EXAMPLE]})

    id: str
    client_id: str
    clinician_id: str | None
    template: TemplateRef
    kind: str
    title: str
    instructions: str
    purpose: str | None
    difficulty_step: int | None
    status: AssignmentStatus
    schedule: ScheduleOut
    window: Window
    reminders: ReminderPolicyIn | None = Field(description="Null: the template's defaults.")
    created_at: datetime
    updated_at: datetime
    occurrences: list[OccurrenceOut] | None = Field(
        default=None, description="Only with `include=occurrences`."
    )


class AdjustmentCreate(RequestModel):
    """A smaller or different step. At least one change; the note says why."""

    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "note": "Weekday evenings are busy; every other evening feels doable.",
                    "rrule": "FREQ=DAILY;INTERVAL=2;COUNT=3",
                },
                {
                    "note": "Two stops still feels like too much right now.",
                    "title": "Ride the bus for one stop",
                    "difficulty_step": 2,
                },
            ]
        }
    )

    note: str | None = Field(default=None, max_length=2000)
    title: Title | None = None
    instructions: LongText | None = None
    difficulty_step: DifficultyStep | None = None
    rrule: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def proposes_something(self) -> AdjustmentCreate:
        if not ({"title", "instructions", "difficulty_step", "rrule"} & self.model_fields_set):
            raise ValueError("propose at least one of title, instructions, difficulty_step, rrule")
        return self


class AdjustmentResolve(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"note": "Agreed: every other evening, and we look at it next session."}]
        }
    )

    note: str | None = Field(default=None, max_length=2000)


ADJUSTMENT_EXAMPLE: JsonDict = {
    "id": EXAMPLE_ADJUSTMENT_ID,
    "assignment_id": EXAMPLE_ASSIGNMENT_ID,
    "status": "accepted",
    "note": "Weekday evenings are busy; every other evening feels doable.",
    "proposed": {"rrule": "FREQ=DAILY;INTERVAL=2;COUNT=3"},
    "response_note": "Agreed: every other evening, and we look at it next session.",
    "resolved_by": EXAMPLE_CLINICIAN_ID,
    "resolved_at": "2026-11-24T16:45:00Z",
    "created_at": "2026-11-24T02:10:00Z",
}
# The same proposal as the client made it, and as a clinician might decline it.
PROPOSED_ADJUSTMENT_EXAMPLE: JsonDict = ADJUSTMENT_EXAMPLE | {
    "status": "proposed",
    "response_note": None,
    "resolved_by": None,
    "resolved_at": None,
}
DECLINE_EXAMPLE: JsonDict = {
    "note": "Let's keep every evening for one more week, then look at it together."
}
DECLINED_ADJUSTMENT_EXAMPLE: JsonDict = ADJUSTMENT_EXAMPLE | {
    "status": "declined",
    "response_note": DECLINE_EXAMPLE["note"],
}


class AdjustmentOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ADJUSTMENT_EXAMPLE]})

    id: str
    assignment_id: str
    status: Literal["proposed", "accepted", "declined"]
    note: str | None
    proposed: dict[str, str | int]
    response_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


_HOMEWORK_ITEM_EXAMPLE: JsonDict = {
    "occurrence": OCCURRENCE_EXAMPLES[0],
    "assignment_id": EXAMPLE_ASSIGNMENT_ID,
    "kind": "mood_log",
    "title": _TITLE,
    "instructions": _MOOD_LOG.instructions,
    "purpose": _PURPOSE,
    "difficulty_step": 1,
    "estimated_minutes": _MOOD_LOG.estimated_minutes,
    "response_schema": _MOOD_LOG.response_schema_dict(),
}


class HomeworkItem(BaseModel):
    """One thing to do today, with what it asks and why."""

    model_config = ConfigDict(json_schema_extra={"examples": [_HOMEWORK_ITEM_EXAMPLE]})

    occurrence: OccurrenceOut
    assignment_id: str
    kind: str
    title: str
    instructions: str
    purpose: str | None
    difficulty_step: int | None
    estimated_minutes: int
    response_schema: dict[str, object]


class Homework(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "date": "2026-11-23",
                    "time_zone": EXAMPLE_TIME_ZONE,
                    "items": [_HOMEWORK_ITEM_EXAMPLE],
                }
            ]
        }
    )

    date: str = Field(description="The client's local date, `YYYY-MM-DD`.")
    time_zone: str
    items: list[HomeworkItem]
