"""The answer of `POST /v1/assignments/preview`: what an assignment would give the client."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.schemas.assignments import ScheduleOut, Window
from app.schemas.common import EXAMPLE_CLIENT_ID, EXAMPLE_TIME_ZONE, LocalWallClock

_LOCAL = "On the client's clock, `YYYY-MM-DDTHH:MM`."


def _evening(day: int, state: str = "scheduled", reason: str | None = None) -> JsonDict:
    """The example's evening of 23 + `day` November in New York: due at 20:00, reminded at 19:00."""
    date = f"2026-11-{23 + day}"
    utc_date = f"2026-11-{24 + day}"
    return {
        "ordinal": day,
        "status": "open" if day == 0 else "upcoming",
        "due_at": f"{utc_date}T01:00:00Z",
        "opens_at": f"{date}T13:00:00Z" if day else "2026-11-23T15:30:00Z",
        "closes_at": f"{utc_date}T13:00:00Z",
        "local_due": f"{date}T20:00",
        "local_opens": f"{date}T08:00" if day else "2026-11-23T10:30",
        "local_closes": f"{utc_date}T08:00",
        "reminders": [
            {
                "due_at": f"{utc_date}T00:00:00Z",
                "local_due": f"{date}T19:00",
                "state": state,
                "reason": reason,
                "moved_from_local": None,
            }
        ],
    }


_EXAMPLE: JsonDict = {
    "client_id": EXAMPLE_CLIENT_ID,
    "time_zone": EXAMPLE_TIME_ZONE,
    "as_of": "2026-11-23T15:30:00Z",
    "until": "2026-11-26T15:30:00Z",
    "schedule": {
        "type": "recurring",
        "rrule": "FREQ=DAILY;BYHOUR=20;BYMINUTE=0",
        "start_local": "2026-11-23T20:00",
        "due_at": None,
    },
    "window": {"opens_before_minutes": 720, "grace_minutes": 720},
    "occurrences": [_evening(0), _evening(1), _evening(2)],
}


class PreviewReminder(BaseModel):
    due_at: datetime
    local_due: LocalWallClock = Field(description=_LOCAL)
    state: Literal["scheduled", "skipped"]
    reason: str | None = Field(
        description="With `scheduled`: `quiet_hours` when it was moved to their end. With "
        "`skipped`: why it would not be sent (`quiet_hours`: they last past the occurrence's "
        "window; `muted`; `assignment_daily_cap`)."
    )
    moved_from_local: LocalWallClock | None = Field(
        description="For one moved out of quiet hours: when it was planned, on the client's clock."
    )


class PreviewOccurrence(BaseModel):
    ordinal: int
    status: Literal["upcoming", "open"] = Field(description="As it would be when created now.")
    due_at: datetime
    opens_at: datetime
    closes_at: datetime
    local_due: LocalWallClock = Field(description=_LOCAL)
    local_opens: LocalWallClock = Field(description=_LOCAL)
    local_closes: LocalWallClock = Field(description=_LOCAL)
    reminders: list[PreviewReminder] = Field(
        description="Those still ahead, in time order, with the client's quiet hours, mute "
        "and the policy's daily cap applied."
    )


class AssignmentPreview(BaseModel):
    """What `POST /v1/assignments` with the same body would create now: nothing is saved."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    client_id: str
    time_zone: str = Field(description="The client's, in which every local time is given.")
    as_of: datetime = Field(description="Now: the preview is what creating it now would do.")
    until: datetime = Field(description="The end of the preview: `as_of` plus `days`.")
    schedule: ScheduleOut
    window: Window
    occurrences: list[PreviewOccurrence] = Field(
        description="Due before `until` (a one-off whenever it is due), in due order."
    )
