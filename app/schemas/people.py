from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic.config import JsonDict

from app.schemas.common import (
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CLINICIAN_ID,
    EXAMPLE_TIME_ZONE,
    ExternalId,
    Instant,
    Locale,
    LocalTime,
    RequestModel,
    TimeZoneName,
)


class QuietHours(BaseModel):
    """Local wall-clock window with no reminders; it may cross midnight (22:00 to 07:00)."""

    start: LocalTime
    end: LocalTime


CLINICIAN_EXAMPLE: JsonDict = {
    "id": EXAMPLE_CLINICIAN_ID,
    "external_id": "vendor-clinician-0193",
    "display_name": "Dr Avery Lane",
    "created_at": "2026-11-02T14:20:00Z",
    "updated_at": "2026-11-02T14:20:00Z",
}


class ClinicianCreate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"external_id": "vendor-clinician-0193", "display_name": "Dr Avery Lane"}]
        }
    )

    external_id: ExternalId
    display_name: str | None = Field(default=None, max_length=200)


class ClinicianUpdate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"display_name": "Dr Avery Lane, PsyD"}]}
    )

    external_id: ExternalId | None = None
    display_name: str | None = Field(default=None, max_length=200)


class ClinicianOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CLINICIAN_EXAMPLE]})

    id: str = Field(examples=[EXAMPLE_CLINICIAN_ID])
    external_id: str = Field(description="The vendor's own id for the clinician.")
    display_name: str | None
    created_at: datetime
    updated_at: datetime


MaxRemindersPerDay = Field(
    default=None, ge=0, le=50, description="At most this many reminders a local day, all homework."
)


class ClientCreate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "patient-4821",
                    "display_name": "Sam",
                    "time_zone": EXAMPLE_TIME_ZONE,
                    "locale": "en-US",
                    "quiet_hours": {"start": "22:00", "end": "07:00"},
                    "next_session_at": "2026-11-30T15:00:00Z",
                    "max_reminders_per_day": 3,
                }
            ]
        }
    )

    external_id: ExternalId
    display_name: str | None = Field(default=None, max_length=200)
    time_zone: TimeZoneName
    locale: Locale = "en"
    quiet_hours: QuietHours | None = None
    next_session_at: Instant | None = None
    reminders_muted: StrictBool = False
    max_reminders_per_day: StrictInt | None = MaxRemindersPerDay


class ClientUpdate(RequestModel):
    """Only the fields sent change. A client may change its own display name, time zone,
    locale and reminder preferences; a clinician only the next session time."""

    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"time_zone": "Europe/Lisbon", "quiet_hours": {"start": "23:00", "end": "08:00"}},
                {"next_session_at": "2026-12-07T15:00:00Z"},
            ]
        }
    )

    external_id: ExternalId | None = None
    display_name: str | None = Field(default=None, max_length=200)
    time_zone: TimeZoneName | None = None
    locale: Locale | None = None
    quiet_hours: QuietHours | None = None
    next_session_at: Instant | None = None
    reminders_muted: StrictBool | None = None
    max_reminders_per_day: StrictInt | None = MaxRemindersPerDay


class ClientOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_CLIENT_ID,
                    "external_id": "patient-4821",
                    "display_name": "Sam",
                    "time_zone": EXAMPLE_TIME_ZONE,
                    "locale": "en-US",
                    "quiet_hours": {"start": "22:00", "end": "07:00"},
                    "next_session_at": "2026-11-30T15:00:00Z",
                    "reminders_muted": False,
                    "max_reminders_per_day": 3,
                    "created_at": "2026-11-16T15:05:12Z",
                    "updated_at": "2026-11-16T15:05:12Z",
                }
            ]
        }
    )

    id: str = Field(examples=[EXAMPLE_CLIENT_ID])
    external_id: str = Field(description="The vendor's own id for the client.")
    display_name: str | None
    time_zone: str = Field(description="IANA name: recurrences and reminders follow it.")
    locale: str
    quiet_hours: QuietHours | None
    next_session_at: datetime | None
    reminders_muted: bool
    max_reminders_per_day: int | None
    created_at: datetime
    updated_at: datetime


class CareTeamMemberAdd(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"clinician_id": EXAMPLE_CLINICIAN_ID}]}
    )

    clinician_id: str = Field(max_length=40)


class CareTeamOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"client_id": EXAMPLE_CLIENT_ID, "clinicians": [CLINICIAN_EXAMPLE]}]
        }
    )

    client_id: str
    clinicians: list[ClinicianOut]
