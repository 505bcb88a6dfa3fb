"""The states that several services share, in one place so that none imports another for them."""

from __future__ import annotations


class ScheduleType:
    once = "once"
    recurring = "recurring"
    before_next_session = "before_next_session"


class OccurrenceStatus:
    upcoming = "upcoming"
    open = "open"
    started = "started"
    completed = "completed"
    partial = "partial"
    missed = "missed"
    declined = "declined"
    cancelled = "cancelled"

    UNRESOLVED = ("upcoming", "open", "started")
