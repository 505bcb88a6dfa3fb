"""When to nudge a client about one occurrence: pure, no database.

Candidates come from the assignment's policy: local times of day (on the day the occurrence is
due, on the client's clock) and lead times before the due time. Only those inside the
occurrence's window are kept. Then the client's preferences apply:

- A reminder that falls in **quiet hours** (local wall-clock, possibly across midnight, e.g.
  22:00-07:00) moves to the first end of the quiet hours after it (on a fall-back night whose
  repeated hour holds the end, the pass after the reminder); if that is at or after the
  occurrence's window closes, it is skipped (`quiet_hours`).
- A **muted** client's reminders are planned but skipped (`muted`), so unmuting brings back the
  ones still ahead.
- At most `max_per_day` reminders per local day for one assignment (the earliest are kept;
  the rest are skipped, `assignment_daily_cap`).

Local times follow the same DST rules as occurrences (a time in a spring-forward gap moves
forward by the gap; a repeated time is the first).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.services.schedules.recurrence import local_to_utc

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
DEFAULT_LEAD_MINUTES = (60,)


@dataclass(frozen=True)
class ReminderPolicy:
    local_times: tuple[str, ...] = ()
    lead_minutes: tuple[int, ...] = ()
    only_if_not_done: bool = True
    max_per_day: int | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Preferences:
    time_zone: str
    quiet_start: str | None = None
    quiet_end: str | None = None
    muted: bool = False


@dataclass(frozen=True)
class Window:
    due_at: datetime
    opens_at: datetime
    closes_at: datetime


@dataclass(frozen=True, order=True)
class PlannedReminder:
    due_at: datetime
    local_due: str = field(compare=False)
    state: str = field(compare=False)  # scheduled | skipped
    reason: str | None = field(compare=False, default=None)
    # Moved out of quiet hours: where it was planned, on the client's clock.
    moved_from_local: str | None = field(compare=False, default=None)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window crosses midnight


def end_of_quiet_hours(local: datetime, start: time, end: time) -> datetime:
    """The first local wall-clock `end` at or after `local`, inside the same quiet spell."""
    day: date = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)
    return datetime.combine(day, end)


def first_at_or_after(wall: datetime, zone: ZoneInfo, instant: datetime) -> datetime:
    """The first moment at or after `instant` that the clocks show `wall`.

    On a fall-back night a wall time in the repeated hour happens twice: the first pass can be
    before `instant` (a reminder at 01:15 on the second pass, quiet hours ending at 01:30),
    and the end of quiet hours is then the second pass. A wall time skipped by a spring-forward
    gap lands one gap-length later, as everywhere else (`local_to_utc`)."""
    first = local_to_utc(wall, zone)
    if first >= instant:
        return first
    return max(first, wall.replace(tzinfo=zone, fold=1).astimezone(UTC))


def plan(policy: ReminderPolicy, prefs: Preferences, window: Window) -> list[PlannedReminder]:
    if not policy.enabled:
        return []
    zone = ZoneInfo(prefs.time_zone)
    due_local_day = _local(window.due_at, zone).date()
    candidates = {
        local_to_utc(datetime.combine(due_local_day, _clock(t)), zone) for t in policy.local_times
    } | {window.due_at - timedelta(minutes=lead) for lead in policy.lead_minutes}

    planned: dict[datetime, PlannedReminder] = {}
    for instant in sorted(candidates):
        if not window.opens_at <= instant < window.closes_at:
            continue
        reminder = _apply_quiet_hours(instant, prefs, zone, window)
        planned.setdefault(reminder.due_at, reminder)
    reminders = sorted(planned.values())
    if policy.max_per_day is not None:
        reminders = _cap_per_day(reminders, policy.max_per_day)
    if prefs.muted:
        reminders = [
            replace(r, state="skipped", reason="muted") if r.state == "scheduled" else r
            for r in reminders
        ]
    return reminders


def _apply_quiet_hours(
    instant: datetime, prefs: Preferences, zone: ZoneInfo, window: Window
) -> PlannedReminder:
    local = _local(instant, zone)
    if prefs.quiet_start and prefs.quiet_end:
        start, end = _clock(prefs.quiet_start), _clock(prefs.quiet_end)
        if in_quiet_hours(local.time(), start, end):
            moved = first_at_or_after(end_of_quiet_hours(local, start, end), zone, instant)
            if moved >= window.closes_at:
                return PlannedReminder(
                    instant, local.strftime(LOCAL_FORMAT), "skipped", "quiet_hours"
                )
            return PlannedReminder(
                moved,
                _local(moved, zone).strftime(LOCAL_FORMAT),
                "scheduled",
                "quiet_hours",
                moved_from_local=local.strftime(LOCAL_FORMAT),
            )
    return PlannedReminder(instant, local.strftime(LOCAL_FORMAT), "scheduled")


def _cap_per_day(reminders: list[PlannedReminder], cap: int) -> list[PlannedReminder]:
    kept: list[PlannedReminder] = []
    per_day: dict[str, int] = {}
    for reminder in reminders:
        day = reminder.local_due[:10]
        if reminder.state == "scheduled":
            per_day[day] = per_day.get(day, 0) + 1
            if per_day[day] > cap:
                reminder = replace(reminder, state="skipped", reason="assignment_daily_cap")
        kept.append(reminder)
    return kept


def shift_out_of_quiet_hours(instant: datetime, prefs: Preferences) -> datetime:
    """For snoozes: an instant in quiet hours moves to their end."""
    if not (prefs.quiet_start and prefs.quiet_end):
        return instant
    zone = ZoneInfo(prefs.time_zone)
    local = _local(instant, zone)
    start, end = _clock(prefs.quiet_start), _clock(prefs.quiet_end)
    if not in_quiet_hours(local.time(), start, end):
        return instant
    return first_at_or_after(end_of_quiet_hours(local, start, end), zone, instant)
