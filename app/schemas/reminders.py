from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.common import (
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_OCCURRENCE_IDS,
    EXAMPLE_REMINDER_ID,
    EXAMPLE_TIME_ZONE,
    Instant,
    LocalWallClock,
    RequestModel,
)

ReminderState = Literal["scheduled", "sent", "skipped", "snoozed", "dismissed", "cancelled"]


class ReminderOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_REMINDER_ID,
                    "client_id": EXAMPLE_CLIENT_ID,
                    "assignment_id": EXAMPLE_ASSIGNMENT_ID,
                    "occurrence_id": EXAMPLE_OCCURRENCE_IDS[0],
                    "due_at": "2026-11-24T01:00:00Z",
                    "local_due": "2026-11-23T20:00",
                    "time_zone": EXAMPLE_TIME_ZONE,
                    "state": "sent",
                    "reason": None,
                    "sent_at": "2026-11-24T01:00:02Z",
                }
            ]
        }
    )

    id: str
    client_id: str
    assignment_id: str
    occurrence_id: str
    due_at: datetime
    local_due: LocalWallClock = Field(description="On the client's clock, `YYYY-MM-DDTHH:MM`.")
    time_zone: str
    state: ReminderState
    reason: str | None = Field(
        description="Why it moved or did not fire: quiet_hours, muted, daily_cap, "
        "assignment_daily_cap, resolved, cancelled, window_closed, window_not_open, dismissed."
    )
    sent_at: datetime | None = Field(
        description="When the `reminder.due` event was written for your webhook receiver."
    )


class SnoozeRequest(RequestModel):
    """Remind again later: after `minutes`, or at `until`; 1 minute to 24 hours ahead, within
    the homework's window. A time in quiet hours moves to their end."""

    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"minutes": 30}, {"until": "2026-11-23T21:30:00-05:00"}]}
    )

    minutes: int | None = Field(default=None, ge=1, le=1440)
    until: Instant | None = None

    @model_validator(mode="after")
    def one_of(self) -> SnoozeRequest:
        if (self.minutes is None) == (self.until is None):
            raise ValueError("give either minutes or until")
        return self
