"""When to nudge a client about one occurrence: pure, no database.

Candidates come from the assignment's policy: local times of day (on the day the occurrence is
due, on the client's clock) and lead times before the due time. Only those inside the
occurrence's window are kept. Then the client's preferences apply:

- A reminder that falls in **quiet hours** (local wall-clock, possibly across midnight, e.g.
  22:00-07:00) moves to the first end of the quiet hours after it (on a fall-back night whose
  repeated hour holds the end, the pass after the reminder; an end that a spring-forward gap
  pushes into the next quiet spell does not count); if that is at or after the
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
from datetime import UTC, datetime, time, timedelta
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


def passes(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants at which the clocks show `wall`: two on a fall-back night (its first and
    second pass), else one (a wall time in a spring-forward gap is one gap-length later, as
    everywhere else: `local_to_utc`)."""
    first = local_to_utc(wall, zone)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return [first, second] if second > first else [first]


def end_of_quiet_spell(instant: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """The first moment after `instant` (which is in quiet hours) that is out of them: the
    first time the clocks show `end` after it, on a fall-back night the pass after it (a
    reminder at 01:15 on the second pass, quiet hours ending at 01:30, moves to the second
    01:30, not the first, which is before it). An end pushed by a spring-forward gap into the
    next quiet spell (quiet hours of nearly a day) is not out of them: then the next end."""
    moved = instant
    for _ in range(3):  # one gap a day at most: the second end is out of quiet hours
        day = _local(moved, zone).date()
        moved = min(
            candidate
            for wall in (datetime.combine(day, end), datetime.combine(day + timedelta(days=1), end))
            for candidate in passes(wall, zone)
            if candidate > moved
        )
        if not in_quiet_hours(_local(moved, zone).time(), start, end):
            break
    return moved


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
            moved = end_of_quiet_spell(instant, zone, start, end)
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
    return end_of_quiet_spell(instant, zone, start, end)
