from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic.config import JsonDict, JsonValue

from app.schemas.common import (
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_COMPLETION_ID,
    EXAMPLE_OCCURRENCE_IDS,
    Instant,
    RequestModel,
)

TEST_EVENT = "webhook.test"

# The OpenAPI document's examples: one endpoint of the shared fictional tenant, and the
# completion.created event of the shared fictional completion.
EXAMPLE_ENDPOINT_ID = "whe_01jd2p4r6t8v0x2z4b6d8f0h2k"
EXAMPLE_EVENT_ID = "evt_01jd5c7e9g1j3m5p7r9t1v3x06"
EXAMPLE_URL = "https://hooks.vendor.example/homework"
EXAMPLE_SECRET = "whsec_ZXhhbXBsZSBvbmx5LCBub3QgYSByZWFsIHNlY3JldCE="
EXAMPLE_EVENT_TYPES: list[JsonValue] = ["completion.created", "completion.distress_flagged"]
ENDPOINT_EXAMPLE: JsonDict = {
    "id": EXAMPLE_ENDPOINT_ID,
    "url": EXAMPLE_URL,
    "description": "Production receiver",
    "event_types": EXAMPLE_EVENT_TYPES,
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "failing_since": None,
    "last_success_at": "2026-11-22T19:41:02Z",
    "previous_secret_expires_at": None,
    "created_at": "2026-11-02T14:25:00Z",
    "updated_at": "2026-11-22T19:41:02Z",
}
EVENT_EXAMPLE: JsonDict = {
    "id": EXAMPLE_EVENT_ID,
    "type": "completion.created",
    "timestamp": "2026-11-22T19:41:00.512084Z",
    "sequence": 1046,
    "data": {
        "assignment_id": EXAMPLE_ASSIGNMENT_ID,
        "client_id": EXAMPLE_CLIENT_ID,
        "completion_id": EXAMPLE_COMPLETION_ID,
        "occurrence_id": EXAMPLE_OCCURRENCE_IDS[0],
    },
}


class EndpointCreate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": EXAMPLE_URL,
                    "event_types": EXAMPLE_EVENT_TYPES,
                    "description": "Production receiver",
                }
            ]
        }
    )

    url: str = Field(
        min_length=1, max_length=2000, examples=["https://hooks.vendor.example/homework"]
    )
    event_types: list[str] = Field(
        default_factory=list, max_length=50, description="Empty: every event type."
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: StrictBool = True


class EndpointUpdate(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"enabled": True},
                {"event_types": [*EXAMPLE_EVENT_TYPES, "occurrence.missed"]},
            ]
        }
    )

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: StrictBool | None = Field(
        default=None, description="Re-enabling clears the failure record."
    )


class RotateSecret(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"overlap_hours": 24}]}
    )

    overlap_hours: StrictInt = Field(
        default=24, ge=0, le=168, description="How long the old secret keeps signing too."
    )


class EndpointOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENDPOINT_EXAMPLE]})

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
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**ENDPOINT_EXAMPLE, "secret": EXAMPLE_SECRET}]}
    )

    secret: str = Field(description="Shown only now: keep it to verify signatures (whsec_...).")


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    response_body: str | None = Field(description="The first 2 KiB of the answer.")
    error: str | None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "whd_01jd5c7e9h3k5n7q9s1u3w5y7a",
                    "event_id": EXAMPLE_EVENT_ID,
                    "event_type": "completion.created",
                    "state": "delivered",
                    "attempt_count": 2,
                    "next_attempt_at": None,
                    "delivered_at": "2026-11-22T19:41:07Z",
                    "created_at": "2026-11-22T19:41:01Z",
                    "attempts": [
                        {
                            "number": 1,
                            "attempted_at": "2026-11-22T19:41:01Z",
                            "status_code": 503,
                            "latency_ms": 38,
                            "response_body": "upstream unavailable",
                            "error": None,
                        },
                        {
                            "number": 2,
                            "attempted_at": "2026-11-22T19:41:07Z",
                            "status_code": 204,
                            "latency_ms": 21,
                            "response_body": "",
                            "error": None,
                        },
                    ],
                }
            ]
        }
    )

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
    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE]})

    id: str
    type: str
    timestamp: datetime
    sequence: int | None
    data: dict[str, Any]


class Redeliver(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{}, {"endpoint_id": EXAMPLE_ENDPOINT_ID}]}
    )

    endpoint_id: str | None = Field(default=None, max_length=40, description="Default: all.")


class RedeliverFailed(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"since": "2026-11-22T00:00:00Z", "until": "2026-11-23T00:00:00Z"}]
        }
    )

    since: Instant
    until: Instant
    endpoint_id: str | None = Field(default=None, max_length=40)


class RedeliveryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"deliveries": 2}]})

    deliveries: int
