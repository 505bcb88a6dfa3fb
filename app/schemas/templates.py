from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.schemas.common import LocalTime, RequestModel

# The catalogue's KINDS, spelt out so that OpenAPI lists them; tests/test_templates.py checks
# that the two never drift apart.
TemplateKind = Literal[
    "thought_record",
    "mood_log",
    "activity_schedule",
    "exposure",
    "mindfulness",
    "journal",
    "skill_practice",
    "reading",
    "phq9",
    "gad7",
    "custom",
]


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text: it would fail there as a 500 instead of here as a
    # 422. (Unpaired surrogates are already refused by pydantic's string parsing.)
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _distinct_times(times: list[str]) -> list[str]:
    if len(set(times)) != len(times):
        raise ValueError("times must be distinct")
    return sorted(times)


StorableText = AfterValidator(_no_nul)
TemplateName = Annotated[str, Field(min_length=1, max_length=200), StorableText]
Instructions = Annotated[
    str,
    Field(min_length=1, max_length=10_000, description="What the client is asked to do."),
    StorableText,
]
Purpose = Annotated[
    str,
    Field(min_length=1, max_length=5_000, description='Why it helps: "why this matters to you".'),
    StorableText,
]
EstimatedMinutes = Annotated[int, Field(ge=1, le=600, description="How long it usually takes.")]
ResponseSchema = Annotated[
    dict[str, Any],
    Field(
        description="What the answers contain, in the JSON Schema subset of docs/TEMPLATES.md.",
        examples=[
            {
                "type": "object",
                "properties": {
                    "worry": {
                        "type": "string",
                        "title": "What did you worry about?",
                        "maxLength": 2000,
                    },
                    "minutes": {"type": "integer", "title": "Minutes", "minimum": 1, "maximum": 60},
                },
                "required": ["worry"],
                "additionalProperties": False,
            }
        ],
    ),
]
ReminderTimes = Annotated[
    list[LocalTime],
    Field(
        max_length=6,
        description="Local times of day (HH:MM) an assignment's reminders start from.",
        examples=[["20:00"]],
    ),
    AfterValidator(_distinct_times),
]


class TemplateCreate(RequestModel):
    """A custom template; its first version. `kind` is always `custom`."""

    name: TemplateName
    instructions: Instructions
    purpose: Purpose
    estimated_minutes: EstimatedMinutes
    response_schema: ResponseSchema
    default_reminder_local_times: ReminderTimes = []


class TemplateVersionCreate(RequestModel):
    """The whole content of the next version: nothing is carried over from the previous one."""

    name: TemplateName
    instructions: Instructions
    purpose: Purpose
    estimated_minutes: EstimatedMinutes
    response_schema: ResponseSchema
    default_reminder_local_times: ReminderTimes


class TemplateOut(BaseModel):
    """A template with the content of one version: its latest, unless `?version=` asked for
    another."""

    id: str = Field(examples=["tpl_builtin_mood_log"])
    kind: TemplateKind
    builtin: bool = Field(description="Built-in templates are shared by every tenant, read-only.")
    name: str
    instructions: str
    purpose: str
    estimated_minutes: int
    response_schema: dict[str, Any]
    default_reminder_local_times: list[str]
    version: int = Field(description="The number of the version shown.")
    version_id: str = Field(
        description="The version's own id: what an assignment made now keeps.",
        examples=["tpv_01jd3x8q0m2v7k3c9r5t6y8w1a"],
    )
    latest_version: int = Field(description="The template's newest version number.")
    retired_at: datetime | None = Field(description="Retired templates cannot be assigned.")
    created_at: datetime
    updated_at: datetime


class TemplateVersionOut(BaseModel):
    """One immutable version of a template."""

    id: str = Field(examples=["tpv_01jd3x8q0m2v7k3c9r5t6y8w1a"])
    template_id: str
    version: int
    name: str
    instructions: str
    purpose: str
    estimated_minutes: int
    response_schema: dict[str, Any]
    default_reminder_local_times: list[str]
    created_at: datetime
