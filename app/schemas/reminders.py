from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from app.schemas.common import RequestModel

ReminderState = Literal["scheduled", "sent", "skipped", "snoozed", "dismissed", "cancelled"]


class ReminderOut(BaseModel):
    id: str
    client_id: str
    assignment_id: str
    occurrence_id: str
    due_at: datetime
    local_due: str = Field(description="On the client's clock, `YYYY-MM-DDTHH:MM`.")
    time_zone: str
    state: ReminderState
    reason: str | None = Field(
        description="Why it moved or did not fire: quiet_hours, muted, daily_cap, "
        "assignment_daily_cap, resolved, cancelled, window_closed, dismissed."
    )
    sent_at: datetime | None


class SnoozeRequest(RequestModel):
    """Remind again later: after `minutes`, or at `until`; 1 minute to 24 hours ahead, within
    the homework's window. A time in quiet hours moves to their end."""

    minutes: int | None = Field(default=None, ge=1, le=1440)
    until: AwareDatetime | None = None

    @model_validator(mode="after")
    def one_of(self) -> SnoozeRequest:
        if (self.minutes is None) == (self.until is None):
            raise ValueError("give either minutes or until")
        return self
