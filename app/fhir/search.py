"""FHIR search parameters, as far as we support them: parsed, checked and turned into SQL.

Unknown parameters are refused (422) rather than ignored, as FHIR would by default: a vendor
who sent `subject=` and got every patient's rows back would be reading more than they meant to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Query, Request
from sqlalchemy import ColumnElement, and_

from app.core.errors import ValidationFailed
from app.fhir import canonical as fhir

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 200
PAGING: Final = frozenset({"_count", "_cursor"})

CountParam = Annotated[
    int,
    Query(alias="_count", ge=1, le=MAX_COUNT, description="Resources per page (1-200)."),
]
CursorParam = Annotated[
    str | None,
    Query(
        alias="_cursor",
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Where the next page starts: follow the Bundle's `next` link.",
    ),
]
LastUpdatedParam = Annotated[
    list[str] | None,
    Query(
        alias="_lastUpdated",
        max_length=2,
        description="`meta.lastUpdated` with a prefix `eq` (the default), `gt`, `ge`, `lt` or "
        "`le`, and a date or a date-time with its offset: `ge2026-11-01`, "
        "`lt2026-11-22T20:00:00Z`. Give it twice for a range.",
        examples=[["ge2026-11-01"]],
    ),
]
PatientParam = Annotated[
    str | None,
    Query(
        max_length=80,
        description="The client: `Patient/clt-…` or its id alone.",
        examples=["Patient/clt-01jd3x8q0m2v7k3c9r5t6y8w1a"],
    ),
]
StatusParam = Annotated[
    str | None,
    Query(max_length=200, description="One status or several, comma-separated (any of them)."),
]
IdentifierParam = Annotated[
    str | None,
    Query(
        max_length=500,
        description="`system|value`, `|value` or `value`: our id (system "
        f"`{fhir.ID_SYSTEM}`) or the vendor's `external_id` (the tenant's system, as "
        "`identifier` shows it).",
        examples=["tenant-client-4711"],
    ),
]
UrlParam = Annotated[
    str | None,
    Query(
        max_length=300,
        description="The Questionnaire's canonical URL, with `|version` for that version.",
        examples=[f"{fhir.CANONICAL}/Questionnaire/tpl-builtin-phq9|1"],
    ),
]


def refuse_unknown(request: Request, supported: Iterable[str]) -> None:
    known = set(supported) | PAGING
    for name in request.query_params:
        if name not in known:
            raise ValidationFailed.for_field(
                "query",
                [name],
                f"This search parameter is not supported here; the supported ones are "
                f"{', '.join(sorted(known))}.",
                "unsupported",
            )


@dataclass(frozen=True, slots=True)
class Range:
    """One `_lastUpdated` value: the instants [start, end) it names, and its prefix."""

    prefix: str
    start: datetime
    end: datetime

    def condition(self, column: Any) -> ColumnElement[bool]:
        condition: ColumnElement[bool]
        match self.prefix:
            case "gt":
                condition = column >= self.end
            case "ge":
                condition = column >= self.start
            case "lt":
                condition = column < self.start
            case "le":
                condition = column < self.end
            case _:
                condition = and_(column >= self.start, column < self.end)
        return condition


_DATE: Final = re.compile(
    r"(?P<prefix>eq|gt|ge|lt|le)?(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(?P<fraction>\.\d{1,6})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2}))?)?)?"
)


def last_updated(values: Sequence[str] | None) -> list[Range]:
    return [_range(value) for value in values or ()]


def _range(value: str) -> Range:
    match = _DATE.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        return _range_of(match.groupdict())
    except ValueError:
        raise ValidationFailed.for_field(
            "query",
            ["_lastUpdated"],
            "Expected an optional prefix (eq, gt, ge, lt, le) and a date (2026-11-01) or a "
            "date-time with its offset (2026-11-01T20:00:00Z).",
            "invalid",
        ) from None


def _range_of(parts: Mapping[str, str | None]) -> Range:
    prefix = parts["prefix"] or "eq"
    year = int(parts["year"] or 0)
    if parts["month"] is None:
        start = datetime(year, 1, 1, tzinfo=UTC)
        return Range(prefix, start, start.replace(year=year + 1))
    month = int(parts["month"])
    if parts["day"] is None:
        start = datetime(year, month, 1, tzinfo=UTC)
        following = (
            start.replace(year=year + 1, month=1) if month == 12 else start.replace(month=month + 1)
        )
        return Range(prefix, start, following)
    day = datetime(year, month, int(parts["day"]), tzinfo=UTC)
    if parts["hour"] is None:
        return Range(prefix, day, day + timedelta(days=1))
    text = (
        f"{parts['year']}-{parts['month']}-{parts['day']}T{parts['hour']}:{parts['minute']}"
        f":{parts['second'] or '00'}{parts['fraction'] or ''}{parts['zone']}"
    )
    start = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    if parts["second"] is None:
        step = timedelta(minutes=1)
    elif parts["fraction"] is None:
        step = timedelta(seconds=1)
    else:
        step = timedelta(microseconds=10 ** (6 - len(parts["fraction"]) + 1))
    return Range(prefix, start, start + step)


def patient_id(value: str | None) -> str | None:
    """Our client id from `Patient/clt-…` or `clt-…` (or our own `clt_…`)."""
    if value is None:
        return None
    return fhir.our_id(value.removeprefix("Patient/"))


def inverse(ours_to_fhir: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Which of our statuses each FHIR status stands for."""
    found: dict[str, tuple[str, ...]] = {}
    for ours, theirs in ours_to_fhir.items():
        found[theirs] = (*found.get(theirs, ()), ours)
    return found


def statuses(value: str | None, ours_by_fhir: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Our statuses that the comma-separated FHIR statuses stand for; None when not filtered."""
    if value is None:
        return None
    found: list[str] = []
    for code in value.split(","):
        if code not in ours_by_fhir:
            raise ValidationFailed.for_field(
                "query",
                ["status"],
                f"Supported statuses here: {', '.join(sorted(ours_by_fhir))}.",
                "invalid",
            )
        found += ours_by_fhir[code]
    return found


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str | None
    value: str


def identifier(value: str | None) -> Identifier | None:
    if value is None:
        return None
    system, bar, code = value.partition("|")
    if not bar:
        return Identifier(None, value)
    return Identifier(system or None, code)
