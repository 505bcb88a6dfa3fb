"""The reminder planner, pure: exact UTC instants for given policies, preferences and windows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.services.reminders.planning import (
    PlannedReminder,
    Preferences,
    ReminderPolicy,
    Window,
    end_of_quiet_spell,
    in_quiet_hours,
    plan,
    shift_out_of_quiet_hours,
)


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def window(due: str, *, opens_before_h: float = 12, grace_h: float = 12) -> Window:
    due_at = utc(due)
    return Window(
        due_at, due_at - timedelta(hours=opens_before_h), due_at + timedelta(hours=grace_h)
    )


def rows(planned: list[PlannedReminder]) -> list[tuple[str, str, str, str | None]]:
    return [(p.due_at.strftime("%Y-%m-%dT%H:%MZ"), p.local_due, p.state, p.reason) for p in planned]


NEW_YORK = Preferences("America/New_York")
NIGHT = Preferences("America/New_York", quiet_start="22:00", quiet_end="07:00")


@pytest.mark.parametrize(
    ("local", "start", "end", "quiet"),
    [
        # 22:00-07:00 crosses midnight: the start is in, the end is out.
        ("21:59", "22:00", "07:00", False),
        ("22:00", "22:00", "07:00", True),
        ("23:59", "22:00", "07:00", True),
        ("00:00", "22:00", "07:00", True),
        ("06:59", "22:00", "07:00", True),
        ("07:00", "22:00", "07:00", False),
        ("12:00", "22:00", "07:00", False),
        # 13:00-14:00 does not.
        ("12:59", "13:00", "14:00", False),
        ("13:00", "13:00", "14:00", True),
        ("13:59", "13:00", "14:00", True),
        ("14:00", "13:00", "14:00", False),
        ("23:00", "13:00", "14:00", False),
        # Equal start and end: no quiet hours at all.
        ("07:00", "07:00", "07:00", False),
        ("03:00", "07:00", "07:00", False),
    ],
)
def test_in_quiet_hours(local: str, start: str, end: str, quiet: bool) -> None:
    clock = [time.fromisoformat(v) for v in (local, start, end)]
    assert in_quiet_hours(*clock) is quiet


@pytest.mark.parametrize(
    ("local", "start", "end", "expected"),
    [
        ("2026-11-22T23:30", "22:00", "07:00", "2026-11-23T07:00"),  # before midnight: next day
        ("2026-11-22T22:00", "22:00", "07:00", "2026-11-23T07:00"),
        ("2026-11-23T03:00", "22:00", "07:00", "2026-11-23T07:00"),  # after midnight: same day
        ("2026-11-22T13:30", "13:00", "14:00", "2026-11-22T14:00"),
    ],
)
def test_end_of_quiet_hours(local: str, start: str, end: str, expected: str) -> None:
    utc = ZoneInfo("UTC")
    moved = end_of_quiet_spell(
        datetime.fromisoformat(local).replace(tzinfo=UTC),
        utc,
        time.fromisoformat(start),
        time.fromisoformat(end),
    )
    assert moved == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_a_local_time_on_the_due_day_in_the_clients_zone() -> None:
    # Due 20:00 EST on 22 November (01:00Z on the 23rd): the 20:00 reminder is on the 22nd.
    planned = plan(ReminderPolicy(local_times=("20:00",)), NEW_YORK, window("2026-11-23T01:00"))
    assert rows(planned) == [("2026-11-23T01:00Z", "2026-11-22T20:00", "scheduled", None)]


@pytest.mark.parametrize(
    ("zone", "due", "local_time", "expected_utc", "expected_local"),
    [
        # Spring forward: 02:30 does not exist in New York on 8 March; it is 03:30 EDT.
        ("America/New_York", "2026-03-08T12:00", "02:30", "2026-03-08T07:30Z", "2026-03-08T03:30"),
        # Fall back: 01:30 happens twice on 1 November; the first (EDT).
        ("America/New_York", "2026-11-01T12:00", "01:30", "2026-11-01T05:30Z", "2026-11-01T01:30"),
        # Lord Howe: +11:00 until 5 April, then +10:30.
        (
            "Australia/Lord_Howe",
            "2026-04-05T09:30",
            "20:00",
            "2026-04-05T09:30Z",
            "2026-04-05T20:00",
        ),
        (
            "Australia/Lord_Howe",
            "2026-04-04T09:00",
            "20:00",
            "2026-04-04T09:00Z",
            "2026-04-04T20:00",
        ),
    ],
)
def test_local_times_follow_the_dst_rules(
    zone: str, due: str, local_time: str, expected_utc: str, expected_local: str
) -> None:
    planned = plan(ReminderPolicy(local_times=(local_time,)), Preferences(zone), window(due))
    assert rows(planned) == [(expected_utc, expected_local, "scheduled", None)]


def test_lead_minutes_are_exact_durations_before_the_due_time() -> None:
    # Due 08:00 EDT on 8 March (12:00Z); six hours earlier is 06:00Z, 01:00 EST, across the gap.
    policy = ReminderPolicy(lead_minutes=(360, 15))
    planned = plan(policy, NEW_YORK, window("2026-03-08T12:00"))
    assert rows(planned) == [
        ("2026-03-08T06:00Z", "2026-03-08T01:00", "scheduled", None),
        ("2026-03-08T11:45Z", "2026-03-08T07:45", "scheduled", None),
    ]


def test_the_same_instant_twice_is_one_reminder() -> None:
    # 19:00 EST is also 60 minutes before a 20:00 due time.
    policy = ReminderPolicy(local_times=("19:00",), lead_minutes=(60,))
    assert rows(plan(policy, NEW_YORK, window("2026-11-23T01:00"))) == [
        ("2026-11-23T00:00Z", "2026-11-22T19:00", "scheduled", None)
    ]


def test_candidates_outside_the_window_are_dropped() -> None:
    # Due 20:00 EST (01:00Z); the window is [17:00Z, 03:00Z): 12:00 EST = 17:00Z is its first
    # instant and is kept; 11:59 EST, and 22:00 EST (03:00Z, the close) are not.
    policy = ReminderPolicy(
        local_times=("11:59", "12:00", "21:59", "22:00"), lead_minutes=(481, 480)
    )
    planned = plan(policy, NEW_YORK, window("2026-11-23T01:00", opens_before_h=8, grace_h=2))
    assert rows(planned) == [
        ("2026-11-22T17:00Z", "2026-11-22T12:00", "scheduled", None),
        ("2026-11-23T02:59Z", "2026-11-22T21:59", "scheduled", None),
    ]


def test_quiet_hours_across_midnight_move_a_reminder_to_their_end() -> None:
    # 23:00 EST on the 22nd (04:00Z); quiet until 07:00 EST on the 23rd (12:00Z); the window
    # closes at 11:00 EST (16:00Z).
    planned = plan(ReminderPolicy(local_times=("23:00",)), NIGHT, window("2026-11-23T04:00"))
    assert rows(planned) == [("2026-11-23T12:00Z", "2026-11-23T07:00", "scheduled", "quiet_hours")]


def test_a_reminder_in_the_morning_part_of_the_quiet_hours_moves_the_same_day() -> None:
    planned = plan(ReminderPolicy(local_times=("06:00",)), NIGHT, window("2026-11-22T17:00"))
    assert rows(planned) == [("2026-11-22T12:00Z", "2026-11-22T07:00", "scheduled", "quiet_hours")]


@pytest.mark.parametrize("grace_h", [6, 8])  # closes 05:00 EST, or exactly at 07:00 EST
def test_quiet_hours_ending_after_the_window_closes_skip_the_reminder(grace_h: int) -> None:
    planned = plan(
        ReminderPolicy(local_times=("23:00",)), NIGHT, window("2026-11-23T04:00", grace_h=grace_h)
    )
    assert rows(planned) == [("2026-11-23T04:00Z", "2026-11-22T23:00", "skipped", "quiet_hours")]


def test_quiet_hours_that_do_not_cross_midnight() -> None:
    lunch = Preferences("America/New_York", quiet_start="13:00", quiet_end="14:00")
    policy = ReminderPolicy(local_times=("12:59", "13:00", "13:30", "14:00"))
    planned = plan(policy, lunch, window("2026-11-22T22:00"))  # due 17:00 EST
    assert rows(planned) == [
        ("2026-11-22T17:59Z", "2026-11-22T12:59", "scheduled", None),
        # 13:00 and 13:30 both move to 14:00, and 14:00 is a candidate too: one reminder.
        ("2026-11-22T19:00Z", "2026-11-22T14:00", "scheduled", "quiet_hours"),
    ]


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    none = Preferences("America/New_York", quiet_start="07:00", quiet_end="07:00")
    planned = plan(ReminderPolicy(local_times=("03:00",)), none, window("2026-11-22T12:00"))
    assert rows(planned) == [("2026-11-22T08:00Z", "2026-11-22T03:00", "scheduled", None)]


def test_a_quiet_hours_end_in_a_dst_gap_moves_forward_by_the_gap() -> None:
    # Quiet 22:00-02:30; 02:30 does not exist on 8 March 2026 in New York: 03:30 EDT (07:30Z).
    prefs = Preferences("America/New_York", quiet_start="22:00", quiet_end="02:30")
    planned = plan(ReminderPolicy(local_times=("23:00",)), prefs, window("2026-03-08T04:00"))
    assert rows(planned) == [("2026-03-08T07:30Z", "2026-03-08T03:30", "scheduled", "quiet_hours")]
    assert shift_out_of_quiet_hours(utc("2026-03-08T05:00"), prefs) == utc("2026-03-08T07:30")


def test_the_per_day_cap_keeps_the_earliest() -> None:
    # Four times on one local day, a cap of 2; one moved out of quiet hours counts where it
    # lands. The window is 00:30 to 18:30 EST.
    prefs = Preferences("America/New_York", quiet_start="06:00", quiet_end="06:45")
    policy = ReminderPolicy(local_times=("06:30", "08:00", "12:00", "18:00"), max_per_day=2)
    planned = plan(policy, prefs, window("2026-11-22T23:00", opens_before_h=17.5, grace_h=0.5))
    assert rows(planned) == [
        ("2026-11-22T11:45Z", "2026-11-22T06:45", "scheduled", "quiet_hours"),
        ("2026-11-22T13:00Z", "2026-11-22T08:00", "scheduled", None),
        ("2026-11-22T17:00Z", "2026-11-22T12:00", "skipped", "assignment_daily_cap"),
        ("2026-11-22T23:00Z", "2026-11-22T18:00", "skipped", "assignment_daily_cap"),
    ]


def test_the_per_day_cap_counts_each_local_day() -> None:
    # A 36-hour window spanning two local days, 08:00 and 20:00 on each; one a day.
    policy = ReminderPolicy(lead_minutes=(0, 720, 1440, 2160), max_per_day=1)
    planned = plan(policy, NEW_YORK, window("2026-11-24T01:00", opens_before_h=36, grace_h=1))
    assert rows(planned) == [
        ("2026-11-22T13:00Z", "2026-11-22T08:00", "scheduled", None),
        ("2026-11-23T01:00Z", "2026-11-22T20:00", "skipped", "assignment_daily_cap"),
        ("2026-11-23T13:00Z", "2026-11-23T08:00", "scheduled", None),
        ("2026-11-24T01:00Z", "2026-11-23T20:00", "skipped", "assignment_daily_cap"),
    ]


def test_a_muted_client_has_everything_planned_but_skipped() -> None:
    muted = Preferences("America/New_York", quiet_start="22:00", quiet_end="07:00", muted=True)
    policy = ReminderPolicy(local_times=("20:00", "23:00"))
    planned = plan(policy, muted, window("2026-11-23T04:00", grace_h=6))
    assert rows(planned) == [
        ("2026-11-23T01:00Z", "2026-11-22T20:00", "skipped", "muted"),
        ("2026-11-23T04:00Z", "2026-11-22T23:00", "skipped", "quiet_hours"),
    ]


def test_a_disabled_policy_plans_nothing() -> None:
    policy = ReminderPolicy(local_times=("20:00",), enabled=False)
    assert plan(policy, NEW_YORK, window("2026-11-23T01:00")) == []


@pytest.mark.parametrize(
    ("instant", "prefs", "expected"),
    [
        ("2026-11-23T04:20", NIGHT, "2026-11-23T12:00"),  # 23:20 EST: to 07:00 EST
        ("2026-11-23T11:59", NIGHT, "2026-11-23T12:00"),  # 06:59 EST
        ("2026-11-23T12:00", NIGHT, "2026-11-23T12:00"),  # 07:00 EST: not quiet
        ("2026-11-23T02:59", NIGHT, "2026-11-23T02:59"),  # 21:59 EST: not quiet
        ("2026-11-23T04:20", NEW_YORK, "2026-11-23T04:20"),  # no quiet hours
    ],
)
def test_shift_out_of_quiet_hours(instant: str, prefs: Preferences, expected: str) -> None:
    assert shift_out_of_quiet_hours(utc(instant), prefs) == utc(expected)
