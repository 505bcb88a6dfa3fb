"""Field types that several resources share."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(name: str) -> str:
    if name not in _zones():
        raise ValueError("must be an IANA time zone name, such as Europe/Berlin")
    return name


TimeZoneName = Annotated[
    str, Field(max_length=64, examples=["America/New_York"]), AfterValidator(_known_zone)
]
LocalTime = Annotated[
    str,
    Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"], description="HH:MM"),
]
ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="The vendor's own id: printable ASCII, no spaces.",
        examples=["vendor-user-1842"],
    ),
]
Locale = Annotated[
    str,
    Field(
        max_length=35,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="BCP 47 language tag",
        examples=["en-US"],
    ),
]

# A date and a time of day; the rest (seconds, fraction, offset) is pydantic's to parse.
_DATE_TIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: object) -> object:
    """Pydantic also reads a number, or a string of digits, as seconds since 1970, and a bare
    date as its midnight: `since=2026` would silently mean 00:33:46 on 1 January 1970. The
    document promises date-time text (`format: date-time`, or the local pattern below);
    anything else is a 422."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME_TEXT.match(value)):
        return value
    raise ValueError("must be a date and time, such as 2026-11-25T20:00:00Z")


# What `LocalOrInstant` takes without an offset: the date, `T` (or `t` or a space, as pydantic
# reads them), hours and minutes, optional seconds and a fraction (`.` or `,`; digits past the
# sixth are dropped), and nothing after.
LOCAL_DATE_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?$"
)
# A local time as we write one: to the minute, no offset.
LOCAL_MINUTE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$"
# RFC 3339's offset, at the end. `format` alone is only an annotation in JSON Schema 2020-12:
# with the pattern, the two branches of `LocalOrInstant` exclude each other for a validator that
# ignores formats too, as `oneOf` needs.
_OFFSET_AT_END = r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"

Instant = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
"""A moment: date-time text with an offset."""
LocalOrInstant = Annotated[
    datetime,
    BeforeValidator(_date_time_text),
    WithJsonSchema(
        {
            "oneOf": [
                {
                    "type": "string",
                    "title": "Local date-time",
                    "description": "The client's wall-clock time, no offset.",
                    "pattern": LOCAL_DATE_TIME_PATTERN,
                },
                {
                    "type": "string",
                    "title": "Instant",
                    "description": "An instant, with its offset (RFC 3339).",
                    "format": "date-time",
                    "pattern": _OFFSET_AT_END,
                },
            ]
        }
    ),
]
"""Date-time text, with an offset (an instant) or without (the client's wall-clock time)."""
LocalWallClock = Annotated[str, Field(json_schema_extra={"pattern": LOCAL_MINUTE_PATTERN})]
"""A time on the client's clock as we answer it, `YYYY-MM-DDTHH:MM` (declared, not checked:
the server writes these)."""


def storable_text(value: str) -> str:
    """PostgreSQL cannot store NUL, and a lone surrogate cannot be encoded as UTF-8: refuse
    both here, as a 422 naming the field, rather than as a database error."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields (a typo should be a 422, not silently ignored) and
    text the database could not store."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: object) -> object:
        if isinstance(value, str):
            return storable_text(value)
        return value


# One fictional client, clinician and piece of homework, shared by the OpenAPI document's
# examples so that they tell one consistent story. Not real people, not real ids.
EXAMPLE_CLIENT_ID = "clt_01jd3x8q0m2v7k3c9r5t6y8w1a"
EXAMPLE_CLINICIAN_ID = "cln_01jd3w5k7m9p2r4t6v8x0z1b3c"
EXAMPLE_ASSIGNMENT_ID = "asg_01jd4a2b3c4d5e6f7g8h9j0k1m"
EXAMPLE_OCCURRENCE_IDS = (
    "occ_01jd4a2b3c4d5e6f7g8h9j0k2n",
    "occ_01jd4a2b3c4e8h1k4n7q0t3w6z",
    "occ_01jd4a2b3c4f2j5m8p1s4v7y0b",
)
EXAMPLE_COMPLETION_ID = "cmp_01jd5c7e9g1j3m5p7r9t1v3x5z"
EXAMPLE_ADJUSTMENT_ID = "adj_01jd4f6h8k0n2q4s6v8y0b2d4f"
EXAMPLE_REMINDER_ID = "rem_01jd4a2b3c5g7k9n1q3s5v7x9z"
EXAMPLE_TEMPLATE_ID = "tpl_01jd2k4m6p8r0t2v4x6z8b0d2f"
EXAMPLE_TEMPLATE_VERSION_ID = "tpv_01jd6n8q0s2v4x6z8b0d2f4h6k"
EXAMPLE_MOOD_LOG_VERSION_ID = "tpv_01jc9e1g3j5m7p9r1t3w5y7a9c"
EXAMPLE_TIME_ZONE = "America/New_York"
