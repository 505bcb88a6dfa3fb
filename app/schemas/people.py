from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from app.schemas.common import ExternalId, Locale, LocalTime, RequestModel, TimeZoneName


class QuietHours(BaseModel):
    """Local wall-clock window with no reminders; it may cross midnight (22:00 to 07:00)."""

    start: LocalTime
    end: LocalTime


class ClinicianCreate(RequestModel):
    external_id: ExternalId
    display_name: str | None = Field(default=None, max_length=200)


class ClinicianUpdate(RequestModel):
    external_id: ExternalId | None = None
    display_name: str | None = Field(default=None, max_length=200)


class ClinicianOut(BaseModel):
    id: str = Field(examples=["cln_01jd3x8q0m2v7k3c9r5t6y8w1a"])
    external_id: str
    display_name: str | None
    created_at: datetime
    updated_at: datetime


MaxRemindersPerDay = Field(
    default=None, ge=0, le=50, description="At most this many reminders a local day, all homework."
)


class ClientCreate(RequestModel):
    external_id: ExternalId
    display_name: str | None = Field(default=None, max_length=200)
    time_zone: TimeZoneName
    locale: Locale = "en"
    quiet_hours: QuietHours | None = None
    next_session_at: AwareDatetime | None = None
    reminders_muted: bool = False
    max_reminders_per_day: int | None = MaxRemindersPerDay


class ClientUpdate(RequestModel):
    """Only the fields sent change. A client may change its own display name, time zone,
    locale and reminder preferences; a clinician only the next session time."""

    external_id: ExternalId | None = None
    display_name: str | None = Field(default=None, max_length=200)
    time_zone: TimeZoneName | None = None
    locale: Locale | None = None
    quiet_hours: QuietHours | None = None
    next_session_at: AwareDatetime | None = None
    reminders_muted: bool | None = None
    max_reminders_per_day: int | None = MaxRemindersPerDay


class ClientOut(BaseModel):
    id: str = Field(examples=["clt_01jd3x8q0m2v7k3c9r5t6y8w1a"])
    external_id: str
    display_name: str | None
    time_zone: str
    locale: str
    quiet_hours: QuietHours | None
    next_session_at: datetime | None
    reminders_muted: bool
    max_reminders_per_day: int | None
    created_at: datetime
    updated_at: datetime


class CareTeamMemberAdd(RequestModel):
    clinician_id: str = Field(max_length=40)


class CareTeamOut(BaseModel):
    client_id: str
    clinicians: list[ClinicianOut]
