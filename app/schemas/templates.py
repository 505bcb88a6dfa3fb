from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from pydantic.config import JsonDict

from app.schemas.common import (
    EXAMPLE_MOOD_LOG_VERSION_ID,
    EXAMPLE_TEMPLATE_ID,
    EXAMPLE_TEMPLATE_VERSION_ID,
    LocalTime,
    RequestModel,
)
from app.services.template_catalog import BUILTIN_TEMPLATES

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
EstimatedMinutes = Annotated[
    StrictInt, Field(ge=1, le=600, description="How long it usually takes.")
]
# The examples' custom template, "Worry time": what its answers contain.
_WORRY_SCHEMA: JsonDict = {
    "type": "object",
    "properties": {
        "worry": {"type": "string", "title": "What did you worry about?", "maxLength": 2000},
        "minutes": {"type": "integer", "title": "Minutes", "minimum": 1, "maximum": 60},
    },
    "required": ["worry"],
    "additionalProperties": False,
}
ResponseSchema = Annotated[
    dict[str, Any],
    Field(
        description="What the answers contain, in the JSON Schema subset of docs/TEMPLATES.md.",
        examples=[_WORRY_SCHEMA],
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


# "Worry time", a tenant's own template, in its first and second versions.
_WORRY_V1: JsonDict = {
    "name": "Worry time",
    "instructions": "Set aside 15 minutes at the same time each day. Write down what you "
    "worried about, then put the worries away until tomorrow's worry time.",
    "purpose": "Postponing worry to a set time shows that worries can wait, and that many "
    "of them shrink by then.",
    "estimated_minutes": 15,
    "response_schema": _WORRY_SCHEMA,
    "default_reminder_local_times": ["18:00"],
}
_WORRY_V2: JsonDict = {
    **_WORRY_V1,
    "instructions": "Set aside 10 minutes at the same time each day. Write down what you "
    "worried about, then put the worries away until tomorrow's worry time.",
    "estimated_minutes": 10,
    "default_reminder_local_times": ["17:30"],
}
_MOOD_LOG = BUILTIN_TEMPLATES["mood_log"]


class TemplateCreate(RequestModel):
    """A custom template; its first version. `kind` is always `custom`."""

    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [_WORRY_V1]}
    )

    name: TemplateName
    instructions: Instructions
    purpose: Purpose
    estimated_minutes: EstimatedMinutes
    response_schema: ResponseSchema
    default_reminder_local_times: ReminderTimes = []


class TemplateVersionCreate(RequestModel):
    """The whole content of the next version: nothing is carried over from the previous one."""

    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [_WORRY_V2]}
    )

    name: TemplateName
    instructions: Instructions
    purpose: Purpose
    estimated_minutes: EstimatedMinutes
    response_schema: ResponseSchema
    default_reminder_local_times: ReminderTimes


class TemplateOut(BaseModel):
    """A template with the content of one version: its latest, unless `?version=` asked for
    another."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "tpl_builtin_mood_log",
                    "kind": "mood_log",
                    "builtin": True,
                    "name": _MOOD_LOG.name,
                    "instructions": _MOOD_LOG.instructions,
                    "purpose": _MOOD_LOG.purpose,
                    "estimated_minutes": _MOOD_LOG.estimated_minutes,
                    "response_schema": _MOOD_LOG.response_schema_dict(),
                    "default_reminder_local_times": list(_MOOD_LOG.default_reminder_local_times),
                    "version": 1,
                    "version_id": EXAMPLE_MOOD_LOG_VERSION_ID,
                    "latest_version": 1,
                    "retired_at": None,
                    "created_at": "2026-11-01T00:00:00Z",
                    "updated_at": "2026-11-01T00:00:00Z",
                }
            ]
        }
    )

    id: str = Field(examples=["tpl_builtin_mood_log", EXAMPLE_TEMPLATE_ID])
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
        examples=[EXAMPLE_MOOD_LOG_VERSION_ID],
    )
    latest_version: int = Field(description="The template's newest version number.")
    retired_at: datetime | None = Field(description="Retired templates cannot be assigned.")
    created_at: datetime
    updated_at: datetime


class TemplateVersionOut(BaseModel):
    """One immutable version of a template."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_TEMPLATE_VERSION_ID,
                    "template_id": EXAMPLE_TEMPLATE_ID,
                    "version": 2,
                    **_WORRY_V2,
                    "created_at": "2026-11-25T10:00:00Z",
                }
            ]
        }
    )

    id: str = Field(examples=[EXAMPLE_TEMPLATE_VERSION_ID])
    template_id: str
    version: int
    name: str
    instructions: str
    purpose: str
    estimated_minutes: int
    response_schema: dict[str, Any]
    default_reminder_local_times: list[str]
    created_at: datetime
