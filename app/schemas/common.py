"""Field types that several resources share."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


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
