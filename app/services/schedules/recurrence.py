"""The recurrence engine: an RFC 5545 RRULE subset, expanded in the client's local time.

Pure: no database, no HTTP. A rule plus a naive local start and an IANA zone give exact UTC
instants. The calendar arithmetic runs on local wall-clock times (dateutil.rrule), so "daily at
20:00" means 20:00 on every local calendar day, and each wall-clock time is then converted to
UTC with zoneinfo.

Supported rule parts (anything else is refused with `RecurrenceError` naming the part):
`FREQ=DAILY|WEEKLY`, `INTERVAL` (1..365), `BYDAY` (MO..SU, no ordinals), `BYHOUR` (0..23) and
`BYMINUTE` (0..59) for the times of day, and either `COUNT` (1..1000) or `UNTIL` (a UTC
`YYYYMMDDTHHMMSSZ`, inclusive, or a date `YYYYMMDD`, meaning the end of that local day). An
optional `RRULE:` prefix is accepted; DTSTART is given separately. Without BYHOUR/BYMINUTE the
time of day is the start's; weeks start on Monday; seconds of the start are ignored.

DST rules, for every zone and every size of change (an hour in New York or Berlin, 30 minutes
on Lord Howe Island):

- A local time that does not exist (a spring-forward gap) is moved forward by the length of the
  gap: 02:30 on 2026-03-08 in America/New_York is 03:30 EDT (07:30Z). This is the wall time
  read with the offset in force before the change (zoneinfo's `fold=0`).
- A local time that happens twice (a fall-back overlap) is the first of the two, the earlier
  instant: 01:30 on 2026-11-01 in America/New_York is 01:30 EDT (05:30Z), not 01:30 EST.
- If moving a time out of a gap makes it land on or past a later time of the same day (only
  possible when two times of day are closer together than the gap), the day's instants are put
  back in order and an instant that occurs twice counts once, COUNT included.

`expand_between` numbers occurrences from 0 in the full series from the start, so a series
can be recomputed from any instant, in a new zone, with stable ordinals and COUNT bounding the
total.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cache
from itertools import groupby, islice, takewhile
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo, available_timezones

from dateutil import rrule as du


class RecurrenceError(ValueError):
    """A recurrence rule or time zone outside what the service supports; safe to show a user."""


class Frequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"


class Occurrence(NamedTuple):
    ordinal: int  # 0-based position in the full series from the rule's start
    at_utc: datetime


DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_RULE_LENGTH = 512
_RANGES = {"INTERVAL": (1, 365), "COUNT": (1, 1000), "BYHOUR": (0, 23), "BYMINUTE": (0, 59)}
_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "COUNT", "UNTIL"}
_DU_FREQ: dict[Frequency, Literal[2, 3]] = {Frequency.DAILY: du.DAILY, Frequency.WEEKLY: du.WEEKLY}
# ASCII only: str.isdigit() accepts characters such as "²" that int() rejects.
_NUMBER = re.compile(r"[0-9]{1,6}")
_ORDINAL_DAY = re.compile(r"[+-]?[0-9]+[A-Z]{2}")
_UNTIL_UTC = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_UNTIL_DATE = re.compile(r"[0-9]{8}")


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A validated rule; equal rules compare equal and print the same `to_rrule()`."""

    freq: Frequency
    interval: int = 1
    by_day: tuple[str, ...] = ()
    by_hour: tuple[int, ...] = ()
    by_minute: tuple[int, ...] = ()
    count: int | None = None
    until: datetime | date | None = None  # an aware datetime, or a local calendar date

    def __post_init__(self) -> None:
        # Validated here, not only in parse(), so that no invalid rule can exist.
        _check_range("INTERVAL", self.interval)
        if self.count is not None:
            _check_range("COUNT", self.count)
        for hour in self.by_hour:
            _check_range("BYHOUR", hour)
        for minute in self.by_minute:
            _check_range("BYMINUTE", minute)
        for day in self.by_day:
            if day not in DAYS:
                raise RecurrenceError(f"BYDAY: {day!r} is not one of {','.join(DAYS)}")
        if self.count is not None and self.until is not None:
            raise RecurrenceError("COUNT and UNTIL cannot both be given")
        if isinstance(self.until, datetime):
            if self.until.tzinfo is None:
                raise RecurrenceError("UNTIL: a date-time must be in UTC")
            object.__setattr__(self, "until", self.until.astimezone(UTC))
        object.__setattr__(self, "by_day", tuple(d for d in DAYS if d in self.by_day))
        object.__setattr__(self, "by_hour", tuple(sorted(set(self.by_hour))))
        object.__setattr__(self, "by_minute", tuple(sorted(set(self.by_minute))))

    @classmethod
    def parse(cls, rrule: str) -> "Recurrence":
        text = rrule.strip().upper()
        if len(text) > MAX_RULE_LENGTH:
            raise RecurrenceError(f"the rule is longer than {MAX_RULE_LENGTH} characters")
        text = text.removeprefix("RRULE:")
        if not text:
            raise RecurrenceError("the rule is empty")
        parts: dict[str, str] = {}
        for part in text.split(";"):
            name, equals, value = part.partition("=")
            if not (name and equals and value):
                raise RecurrenceError(f"{part!r} is not NAME=VALUE")
            if name in parts:
                raise RecurrenceError(f"{name} is given more than once")
            parts[name] = value
        for name in parts:
            if name not in _PARTS:
                raise RecurrenceError(f"{name} is not supported")
        if "FREQ" not in parts:
            raise RecurrenceError("FREQ is required")
        try:
            freq = Frequency(parts["FREQ"])
        except ValueError:
            raise RecurrenceError(f"FREQ={parts['FREQ']} is not supported") from None
        return cls(
            freq=freq,
            interval=_number("INTERVAL", parts.get("INTERVAL", "1")),
            by_day=_days(parts.get("BYDAY")),
            by_hour=_numbers("BYHOUR", parts.get("BYHOUR")),
            by_minute=_numbers("BYMINUTE", parts.get("BYMINUTE")),
            count=_number("COUNT", parts["COUNT"]) if "COUNT" in parts else None,
            until=_until(parts["UNTIL"]) if "UNTIL" in parts else None,
        )

    def to_rrule(self) -> str:
        parts = [f"FREQ={self.freq}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.by_day:
            parts.append("BYDAY=" + ",".join(self.by_day))
        if self.by_hour:
            parts.append("BYHOUR=" + ",".join(map(str, self.by_hour)))
        if self.by_minute:
            parts.append("BYMINUTE=" + ",".join(map(str, self.by_minute)))
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if isinstance(self.until, datetime):
            # isoformat, unlike strftime, pads years below 1000 to four digits.
            stamp = self.until.replace(tzinfo=None).isoformat(timespec="seconds")
            parts.append("UNTIL=" + stamp.replace("-", "").replace(":", "") + "Z")
        elif self.until is not None:
            parts.append("UNTIL=" + self.until.isoformat().replace("-", ""))
        return ";".join(parts)


def validate_time_zone(name: str) -> ZoneInfo:
    """The zone for an IANA name; anything else (paths, "", "localtime") is refused."""
    if name not in _known_zones():
        raise RecurrenceError(f"{name[:64]!r} is not a known IANA time zone")
    return ZoneInfo(name)


def local_to_utc(naive_local: datetime, tz: str | ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time, by the DST rules in the module docstring."""
    if naive_local.tzinfo is not None:
        raise ValueError("naive_local must be a naive local wall-clock time")
    zone = tz if isinstance(tz, ZoneInfo) else validate_time_zone(tz)
    # PEP 495 fold=0 gives both documented rules: in an overlap the earlier instant, in a gap
    # the pre-transition offset, which lands the time one gap-length later.
    return naive_local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def expand(
    rule: Recurrence,
    *,
    start_local: datetime,
    tz: str | ZoneInfo,
    window_end_utc: datetime | None = None,
    limit: int = 1000,
) -> list[datetime]:
    """The first `limit` occurrences (before `window_end_utc`, if given) as UTC instants."""
    instants = _series(rule, start_local, tz)
    if window_end_utc is not None:
        end = _aware("window_end_utc", window_end_utc)
        instants = takewhile(lambda instant: instant < end, instants)
    return list(islice(instants, limit))


def expand_between(
    rule: Recurrence,
    start_local: datetime,
    tz: str | ZoneInfo,
    from_utc: datetime,
    to_utc: datetime,
    *,
    limit: int = 1000,
) -> list[Occurrence]:
    """Occurrences whose instant is in [from_utc, to_utc), numbered within the full series.

    The series is always counted from `start_local`, so COUNT bounds the total and ordinals are
    stable. After a change of zone an ordinal can fall on both sides of the change instant
    (moving west) or on neither (moving east): keep the past occurrences and skip recomputed
    ones whose ordinal is already taken.
    """
    start, end = _aware("from_utc", from_utc), _aware("to_utc", to_utc)
    found: list[Occurrence] = []
    for index, instant in enumerate(_series(rule, start_local, tz)):
        if instant >= end or len(found) >= limit:
            break
        if instant >= start:
            found.append(Occurrence(index, instant))
    return found


# The most occurrences one rule may have in any 28 days (a horizon): more is refused when the
# schedule is saved, never cut short when it is materialised.
MAX_PER_HORIZON = 1000


def refusal(
    rule: Recurrence,
    start_local: datetime,
    tz: str | ZoneInfo,
    from_utc: datetime,
    horizon: timedelta,
) -> str | None:
    """Why this series cannot be assigned now, or None: it yields nothing from `from_utc` on,
    or more than MAX_PER_HORIZON occurrences in the horizon from there (or from its start:
    a dense rule is refused before its past is walked)."""
    if _never_matches(rule, start_local):
        weekday = _WEEKDAY_NAMES[start_local.weekday()]
        return (
            f"the rule never matches: every {rule.interval}th day from the start is a "
            f"{weekday}, and BYDAY leaves {weekday} out"
        )
    first_weeks = expand(rule, start_local=start_local, tz=tz, limit=MAX_PER_HORIZON + 1)
    if len(first_weeks) > MAX_PER_HORIZON and first_weeks[-1] - first_weeks[0] < horizon:
        return f"more than {MAX_PER_HORIZON} occurrences in {horizon.days} days"
    ahead = expand_between(
        rule, start_local, tz, from_utc, from_utc + horizon, limit=MAX_PER_HORIZON + 1
    )
    if len(ahead) > MAX_PER_HORIZON:
        return f"more than {MAX_PER_HORIZON} occurrences in {horizon.days} days"
    if ahead or expand_between(rule, start_local, tz, from_utc, _END_OF_TIME, limit=1):
        return None
    if next(_series(rule, start_local, tz), None) is None:
        return "the rule yields no occurrence at all: its UNTIL is before the first one"
    return "every occurrence of the rule is in the past: its COUNT or UNTIL has run out"


_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _never_matches(rule: Recurrence, start_local: datetime) -> bool:
    """A daily rule every 7th (14th, …) day lands on the start's weekday only: if BYDAY leaves
    that day out, nothing ever matches, and the expansion would walk to the year 9999 to find
    out. (Any other interval reaches every weekday; a weekly rule has every BYDAY.)"""
    return (
        rule.freq == Frequency.DAILY
        and bool(rule.by_day)
        and rule.interval % 7 == 0
        and DAYS[start_local.weekday()] not in rule.by_day
    )


def first_instant(rule: Recurrence, start_local: datetime, tz: str | ZoneInfo) -> datetime | None:
    """The series' first occurrence. It can be earlier than `start_local`'s own instant: a
    start in a spring-forward gap moves one gap-length later, a 03:10 occurrence that day
    does not."""
    return next(_series(rule, start_local, tz), None)


def _series(rule: Recurrence, start_local: datetime, tz: str | ZoneInfo) -> Iterator[datetime]:
    """The full series of UTC instants from the start, in order, with COUNT and UNTIL applied."""
    zone = tz if isinstance(tz, ZoneInfo) else validate_time_zone(tz)
    if start_local.tzinfo is not None:
        raise ValueError("start_local must be a naive local wall-clock time")
    if _never_matches(rule, start_local):
        return
    until_instant = rule.until if isinstance(rule.until, datetime) else None
    until_day = rule.until if until_instant is None else None
    # Naive wall-clock arithmetic: a "day" is a calendar day, never 23 or 25 hours long.
    local_times = du.rrule(
        _DU_FREQ[rule.freq],
        dtstart=start_local.replace(second=0, microsecond=0),
        interval=rule.interval,
        wkst=du.MO,
        byweekday=[DAYS.index(day) for day in rule.by_day] or None,
        byhour=rule.by_hour or None,
        byminute=rule.by_minute or None,
    )
    produced = 0
    last: datetime | None = None
    for day, times in groupby(local_times, key=datetime.date):
        if until_day is not None and day > until_day:
            return
        for instant in sorted({local_to_utc(t, zone) for t in times}):
            if until_instant is not None and instant > until_instant:
                return
            if last is not None and instant <= last:
                continue
            yield instant
            last, produced = instant, produced + 1
            if produced == rule.count:
                return


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


@cache
def _known_zones() -> frozenset[str]:
    # "localtime" is the server's own zone and "Factory" is a placeholder: neither is a client's.
    return frozenset(available_timezones() - {"localtime", "Factory"})


def _check_range(name: str, value: int) -> None:
    low, high = _RANGES[name]
    if not low <= value <= high:
        raise RecurrenceError(f"{name}: {value} is out of range ({low}..{high})")


def _number(name: str, value: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise RecurrenceError(f"{name}: {value!r} is not a whole number")
    return int(value)


def _numbers(name: str, value: str | None) -> tuple[int, ...]:
    return () if value is None else tuple(_number(name, item) for item in value.split(","))


def _days(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    for day in value.split(","):
        if _ORDINAL_DAY.fullmatch(day):
            raise RecurrenceError(f"BYDAY: {day} has an ordinal, which is not supported")
    return tuple(value.split(","))


def _until(value: str) -> datetime | date:
    try:
        if _UNTIL_UTC.fullmatch(value):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if _UNTIL_DATE.fullmatch(value):
            return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise RecurrenceError(f"UNTIL: {value} is not a valid date") from None
    raise RecurrenceError(f"UNTIL: {value!r} must be YYYYMMDDTHHMMSSZ (UTC) or YYYYMMDD")
