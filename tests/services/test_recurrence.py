"""The recurrence contract: exact UTC instants for local-time rules, across DST and moves.

Every expected instant is written out by hand from the zone's published offsets (2026 tzdata):
New York -5/-4 (changes Mar 8, Nov 1), Berlin +1/+2 (Mar 29, Oct 25), London +0/+1 (Mar 29),
Los Angeles -7 from Mar 8, Lord Howe +11 until Apr 5 then +10:30 until Oct 4, Kathmandu +5:45.
"""

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.services.schedules.recurrence import (
    Frequency,
    Occurrence,
    Recurrence,
    RecurrenceError,
    expand,
    expand_between,
    local_to_utc,
    validate_time_zone,
)

NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def run(rrule: str, start_local: datetime, tz: str) -> list[datetime]:
    return expand(Recurrence.parse(rrule), start_local=start_local, tz=tz)


def test_new_york_daily_at_20_across_the_spring_change() -> None:
    # The start's time of day is used when the rule gives none.
    assert run("FREQ=DAILY;COUNT=4", datetime(2026, 3, 6, 20, 0), NEW_YORK) == [
        utc(2026, 3, 7, 1, 0),  # Mar 6, EST
        utc(2026, 3, 8, 1, 0),  # Mar 7, EST
        utc(2026, 3, 9, 0, 0),  # Mar 8, EDT
        utc(2026, 3, 10, 0, 0),
    ]


def test_new_york_daily_at_20_across_the_autumn_change() -> None:
    rule = "FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT=4"
    assert run(rule, datetime(2026, 10, 30, 9, 15), NEW_YORK) == [
        utc(2026, 10, 31, 0, 0),  # Oct 30, EDT
        utc(2026, 11, 1, 0, 0),  # Oct 31, EDT
        utc(2026, 11, 2, 1, 0),  # Nov 1, EST
        utc(2026, 11, 3, 1, 0),
    ]


def test_berlin_daily_at_20_across_both_changes() -> None:
    rule = "FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT=4"
    assert run(rule, datetime(2026, 3, 27, 0, 0), "Europe/Berlin") == [
        utc(2026, 3, 27, 19, 0),
        utc(2026, 3, 28, 19, 0),
        utc(2026, 3, 29, 18, 0),  # CEST from Mar 29
        utc(2026, 3, 30, 18, 0),
    ]
    assert run(rule, datetime(2026, 10, 23, 0, 0), "Europe/Berlin") == [
        utc(2026, 10, 23, 18, 0),
        utc(2026, 10, 24, 18, 0),
        utc(2026, 10, 25, 19, 0),  # CET from Oct 25
        utc(2026, 10, 26, 19, 0),
    ]


def test_lord_howe_daily_at_20_across_its_half_hour_changes() -> None:
    rule = "FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT=4"
    assert run(rule, datetime(2026, 4, 3, 0, 0), LORD_HOWE) == [
        utc(2026, 4, 3, 9, 0),  # +11
        utc(2026, 4, 4, 9, 0),
        utc(2026, 4, 5, 9, 30),  # +10:30 from Apr 5
        utc(2026, 4, 6, 9, 30),
    ]
    assert run(rule, datetime(2026, 10, 2, 0, 0), LORD_HOWE) == [
        utc(2026, 10, 2, 9, 30),  # +10:30
        utc(2026, 10, 3, 9, 30),
        utc(2026, 10, 4, 9, 0),  # +11 from Oct 4
        utc(2026, 10, 5, 9, 0),
    ]


def test_kathmandu_quarter_hour_offset() -> None:
    assert run("FREQ=DAILY;COUNT=3", datetime(2026, 1, 10, 8, 0), "Asia/Kathmandu") == [
        utc(2026, 1, 10, 2, 15),
        utc(2026, 1, 11, 2, 15),
        utc(2026, 1, 12, 2, 15),
    ]


def test_a_time_in_the_spring_gap_moves_forward_by_the_gap() -> None:
    moved = local_to_utc(datetime(2026, 3, 8, 2, 30), NEW_YORK)
    assert moved == utc(2026, 3, 8, 7, 30)
    assert moved.astimezone(ZoneInfo(NEW_YORK)).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)
    assert run("FREQ=DAILY;COUNT=3", datetime(2026, 3, 7, 2, 30), NEW_YORK) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 30),  # 02:30 does not exist: 03:30 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_a_repeated_autumn_time_is_the_first_one() -> None:
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)
    assert run("FREQ=DAILY;COUNT=3", datetime(2026, 10, 31, 1, 30), NEW_YORK) == [
        utc(2026, 10, 31, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 happens twice: the first, EDT
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
    ]


def test_lord_howe_gap_and_overlap_follow_the_same_rules() -> None:
    assert run("FREQ=DAILY;COUNT=3", datetime(2026, 10, 3, 2, 15), LORD_HOWE) == [
        utc(2026, 10, 2, 15, 45),  # 02:15 +10:30
        utc(2026, 10, 3, 15, 45),  # 02:15 does not exist: 02:45 +11
        utc(2026, 10, 4, 15, 15),  # 02:15 +11
    ]
    assert run("FREQ=DAILY;COUNT=3", datetime(2026, 4, 4, 1, 45), LORD_HOWE) == [
        utc(2026, 4, 3, 14, 45),  # 01:45 +11
        utc(2026, 4, 4, 14, 45),  # 01:45 happens twice: the first, +11
        utc(2026, 4, 5, 15, 15),  # 01:45 +10:30
    ]


def test_times_pushed_out_of_a_gap_stay_in_order_and_count_once() -> None:
    # 02:15 moves to 02:45, after the real 02:30.
    rule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=15,30;UNTIL=20261004"
    assert run(rule, datetime(2026, 10, 4, 0, 0), LORD_HOWE) == [
        utc(2026, 10, 3, 15, 30),
        utc(2026, 10, 3, 15, 45),
    ]
    # 02:00 and 02:30 become 03:00 and 03:30, which also occur for real: four times, two instants.
    rule = "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=0,30;COUNT=3"
    assert run(rule, datetime(2026, 3, 8, 0, 0), NEW_YORK) == [
        utc(2026, 3, 8, 7, 0),
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 9, 6, 0),
    ]


def test_weekly_on_mon_wed_fri_every_other_week() -> None:
    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;COUNT=6"
    assert run(rule, datetime(2026, 3, 2, 20, 0), NEW_YORK) == [
        utc(2026, 3, 3, 1, 0),  # Mon Mar 2, EST
        utc(2026, 3, 5, 1, 0),
        utc(2026, 3, 7, 1, 0),
        utc(2026, 3, 17, 0, 0),  # Mon Mar 16, EDT
        utc(2026, 3, 19, 0, 0),
        utc(2026, 3, 21, 0, 0),
    ]


def test_weeks_start_on_monday() -> None:
    # Sunday Mar 1 ends the week of Feb 23, so the next week in the series is that of Mar 9.
    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;COUNT=4"
    assert run(rule, datetime(2026, 3, 1, 9, 0), "UTC") == [
        utc(2026, 3, 9, 9, 0),
        utc(2026, 3, 11, 9, 0),
        utc(2026, 3, 13, 9, 0),
        utc(2026, 3, 23, 9, 0),
    ]


def test_until_as_a_utc_date_time_is_inclusive() -> None:
    assert run("FREQ=DAILY;UNTIL=20260309T000000Z", datetime(2026, 3, 6, 20, 0), NEW_YORK) == [
        utc(2026, 3, 7, 1, 0),
        utc(2026, 3, 8, 1, 0),
        utc(2026, 3, 9, 0, 0),
    ]


def test_until_as_a_date_ends_with_that_local_day() -> None:
    # Mar 8 20:00 EDT is already Mar 9 in UTC, but still Mar 8 for the client.
    assert run("FREQ=DAILY;UNTIL=20260308", datetime(2026, 3, 6, 20, 0), NEW_YORK) == [
        utc(2026, 3, 7, 1, 0),
        utc(2026, 3, 8, 1, 0),
        utc(2026, 3, 9, 0, 0),
    ]


def test_several_times_a_day() -> None:
    # 08:00 on Mar 7 is before the start and is not an occurrence.
    rule = "FREQ=DAILY;BYHOUR=8,20;BYMINUTE=0;COUNT=4"
    assert run(rule, datetime(2026, 3, 7, 9, 0), NEW_YORK) == [
        utc(2026, 3, 8, 1, 0),  # Mar 7 20:00 EST
        utc(2026, 3, 8, 12, 0),  # Mar 8 08:00 EDT
        utc(2026, 3, 9, 0, 0),  # Mar 8 20:00 EDT
        utc(2026, 3, 9, 12, 0),
    ]


def test_an_open_ended_rule_stops_at_the_window_or_the_limit() -> None:
    rule = Recurrence.parse("FREQ=DAILY")
    start = datetime(2026, 1, 10, 8, 0)
    window = expand(rule, start_local=start, tz="UTC", window_end_utc=utc(2026, 1, 12, 8, 0))
    assert window == [utc(2026, 1, 10, 8, 0), utc(2026, 1, 11, 8, 0)]
    assert len(expand(rule, start_local=start, tz="UTC", limit=5)) == 5


def test_seconds_of_the_start_are_ignored() -> None:
    assert run("FREQ=DAILY;COUNT=2", datetime(2026, 1, 10, 8, 0, 30, 5), "UTC") == [
        utc(2026, 1, 10, 8, 0),
        utc(2026, 1, 11, 8, 0),
    ]


def test_expand_between_is_half_open_and_numbers_from_the_start() -> None:
    rule = Recurrence.parse("FREQ=DAILY;COUNT=5")
    start = datetime(2026, 1, 10, 8, 0)
    assert expand_between(rule, start, "UTC", utc(2026, 1, 11, 8, 0), utc(2026, 1, 13, 8, 0)) == [
        Occurrence(1, utc(2026, 1, 11, 8, 0)),
        Occurrence(2, utc(2026, 1, 12, 8, 0)),
    ]


def test_a_client_moving_from_london_to_los_angeles() -> None:
    rule = Recurrence.parse("FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT=10")
    start = datetime(2026, 3, 20, 0, 0)
    moved_at = utc(2026, 3, 25, 12, 0)

    past = expand_between(rule, start, "Europe/London", EPOCH, moved_at)
    future = expand_between(rule, start, "America/Los_Angeles", moved_at, FAR)

    assert past == [
        Occurrence(0, utc(2026, 3, 20, 20, 0)),  # 20:00 GMT
        Occurrence(1, utc(2026, 3, 21, 20, 0)),
        Occurrence(2, utc(2026, 3, 22, 20, 0)),
        Occurrence(3, utc(2026, 3, 23, 20, 0)),
        Occurrence(4, utc(2026, 3, 24, 20, 0)),
    ]
    assert future == [
        Occurrence(5, utc(2026, 3, 26, 3, 0)),  # Mar 25 20:00 PDT
        Occurrence(6, utc(2026, 3, 27, 3, 0)),
        Occurrence(7, utc(2026, 3, 28, 3, 0)),
        Occurrence(8, utc(2026, 3, 29, 3, 0)),
        Occurrence(9, utc(2026, 3, 30, 3, 0)),  # COUNT=10 reached
    ]


def test_a_westward_move_can_recompute_an_ordinal_already_held() -> None:
    # Moved after 20:00 in London but before 20:00 in Los Angeles on the same day.
    rule = Recurrence.parse("FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT=10")
    start = datetime(2026, 3, 20, 0, 0)
    moved_at = utc(2026, 3, 24, 22, 0)

    past = expand_between(rule, start, "Europe/London", EPOCH, moved_at)
    future = expand_between(rule, start, "America/Los_Angeles", moved_at, FAR)

    assert past[-1] == Occurrence(4, utc(2026, 3, 24, 20, 0))
    assert future[0] == Occurrence(4, utc(2026, 3, 25, 3, 0))
    kept = [o for o in future if o.ordinal > past[-1].ordinal]
    assert [o.ordinal for o in past + kept] == list(range(10))
    assert kept[0] == Occurrence(5, utc(2026, 3, 26, 3, 0))


def test_parse_is_case_insensitive_and_prints_a_canonical_rule() -> None:
    rule = Recurrence.parse("rrule:freq=weekly;byday=fr,mo;byhour=20,8;byminute=0;interval=2")
    assert rule == Recurrence(
        Frequency.WEEKLY, interval=2, by_day=("MO", "FR"), by_hour=(8, 20), by_minute=(0,)
    )
    assert rule.to_rrule() == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;BYHOUR=8,20;BYMINUTE=0"
    for text in [
        "FREQ=DAILY;COUNT=7",
        "FREQ=DAILY;UNTIL=20261231T235959Z",
        "FREQ=DAILY;UNTIL=20261231",
    ]:
        assert Recurrence.parse(text).to_rrule() == text
    assert Recurrence.parse("FREQ=DAILY;UNTIL=20261231").until == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("rrule", "message"),
    [
        ("", "the rule is empty"),
        ("RRULE:", "the rule is empty"),
        ("FREQ=DAILY;" + "BYHOUR=8;" * 60, "the rule is longer than 512 characters"),
        ("BYHOUR=8", "FREQ is required"),
        ("FREQ=DAILY;", "'' is not NAME=VALUE"),
        ("FREQ=DAILY;COUNT", "'COUNT' is not NAME=VALUE"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given more than once"),
        ("FREQ=MONTHLY", "FREQ=MONTHLY is not supported"),
        ("FREQ=YEARLY", "FREQ=YEARLY is not supported"),
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported"),
        ("FREQ=MONTHLY;BYSETPOS=-1;BYDAY=MO", "BYSETPOS is not supported"),
        ("FREQ=DAILY;BYMONTHDAY=1", "BYMONTHDAY is not supported"),
        ("FREQ=DAILY;BYSECOND=0", "BYSECOND is not supported"),
        ("FREQ=DAILY;BYMONTH=1", "BYMONTH is not supported"),
        ("FREQ=DAILY;BYYEARDAY=1", "BYYEARDAY is not supported"),
        ("FREQ=DAILY;BYWEEKNO=1", "BYWEEKNO is not supported"),
        ("FREQ=WEEKLY;WKST=SU", "WKST is not supported"),
        ("FREQ=DAILY;DTSTART=20260101T000000Z", "DTSTART is not supported"),
        ("FREQ=DAILY;X-NAME=1", "X-NAME is not supported"),
        ("FREQ=WEEKLY;BYDAY=1MO", "BYDAY: 1MO has an ordinal, which is not supported"),
        ("FREQ=WEEKLY;BYDAY=MO,-1FR", "BYDAY: -1FR has an ordinal, which is not supported"),
        ("FREQ=WEEKLY;BYDAY=MON", "BYDAY: 'MON' is not one of MO,TU,WE,TH,FR,SA,SU"),
        ("FREQ=DAILY;BYHOUR=25", "BYHOUR: 25 is out of range (0..23)"),
        ("FREQ=DAILY;BYHOUR=8,-1", "BYHOUR: '-1' is not a whole number"),
        ("FREQ=DAILY;BYHOUR=8,,20", "BYHOUR: '' is not a whole number"),
        ("FREQ=DAILY;BYMINUTE=60", "BYMINUTE: 60 is out of range (0..59)"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL: 0 is out of range (1..365)"),
        ("FREQ=DAILY;INTERVAL=366", "INTERVAL: 366 is out of range (1..365)"),
        ("FREQ=DAILY;INTERVAL=²", "INTERVAL: '²' is not a whole number"),
        ("FREQ=DAILY;COUNT=0", "COUNT: 0 is out of range (1..1000)"),
        ("FREQ=DAILY;COUNT=1001", "COUNT: 1001 is out of range (1..1000)"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20260101", "COUNT and UNTIL cannot both be given"),
        ("FREQ=DAILY;UNTIL=20260101T000000", "UNTIL: '20260101T000000' must be YYYYMMDDTHHMMSSZ"),
        ("FREQ=DAILY;UNTIL=2026-01-01", "UNTIL: '2026-01-01' must be YYYYMMDDTHHMMSSZ"),
        ("FREQ=DAILY;UNTIL=20261301", "UNTIL: 20261301 is not a valid date"),
        ("FREQ=DAILY;UNTIL=20260101T250000Z", "UNTIL: 20260101T250000Z is not a valid date"),
    ],
)
def test_parse_refuses_what_is_outside_the_subset(rrule: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match="^" + re.escape(message)):
        Recurrence.parse(rrule)


def test_a_rule_built_directly_is_validated_too() -> None:
    with pytest.raises(RecurrenceError, match=r"^BYHOUR: 24 is out of range"):
        Recurrence(Frequency.DAILY, by_hour=(24,))
    with pytest.raises(RecurrenceError, match=r"^UNTIL: a date-time must be in UTC"):
        Recurrence(Frequency.DAILY, until=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../etc",
        "/etc/passwd",
        "America",
        "localtime",
        "Mars/Olympus_Mons",
        "UTC\x00",
        "A" * 300,
    ],
)
def test_unknown_or_unsafe_time_zones_are_refused(name: str) -> None:
    with pytest.raises(RecurrenceError, match="is not a known IANA time zone"):
        validate_time_zone(name)
    with pytest.raises(RecurrenceError):
        run("FREQ=DAILY;COUNT=1", datetime(2026, 1, 1, 8, 0), name)


def test_known_time_zones_are_accepted() -> None:
    assert validate_time_zone("Asia/Kathmandu") == ZoneInfo("Asia/Kathmandu")
    assert validate_time_zone("UTC") == ZoneInfo("UTC")


def test_local_and_utc_arguments_must_be_naive_and_aware() -> None:
    rule = Recurrence.parse("FREQ=DAILY;COUNT=1")
    with pytest.raises(ValueError, match="naive"):
        local_to_utc(datetime(2026, 1, 1, tzinfo=UTC), NEW_YORK)
    with pytest.raises(ValueError, match="naive"):
        expand(rule, start_local=datetime(2026, 1, 1, tzinfo=UTC), tz=NEW_YORK)
    with pytest.raises(ValueError, match="aware"):
        expand_between(rule, datetime(2026, 1, 1), NEW_YORK, datetime(2026, 1, 1), FAR)
