from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from app.schemas.common import RequestModel

TEST_EVENT = "webhook.test"


class EndpointCreate(RequestModel):
    url: str = Field(
        min_length=1, max_length=2000, examples=["https://hooks.vendor.example/homework"]
    )
    event_types: list[str] = Field(
        default_factory=list, max_length=50, description="Empty: every event type."
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class EndpointUpdate(RequestModel):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(default=None, description="Re-enabling clears the failure record.")


class RotateSecret(RequestModel):
    overlap_hours: int = Field(
        default=24, ge=0, le=168, description="How long the old secret keeps signing too."
    )


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: Literal["manual", "gone", "failing"] | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="Shown only now: keep it to verify signatures (whsec_...).")


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    response_body: str | None = Field(description="The first 2 KiB of the answer.")
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed", "cancelled"]
    attempt_count: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    attempts: list[AttemptOut]


class EventOut(BaseModel):
    id: str
    type: str
    timestamp: datetime
    sequence: int | None
    data: dict[str, Any]


class Redeliver(RequestModel):
    endpoint_id: str | None = Field(default=None, max_length=40, description="Default: all.")


class RedeliverFailed(RequestModel):
    since: AwareDatetime
    until: AwareDatetime
    endpoint_id: str | None = Field(default=None, max_length=40)


class RedeliveryOut(BaseModel):
    deliveries: int
