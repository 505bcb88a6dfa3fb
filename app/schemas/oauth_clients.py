from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.models import OAuthClient
from app.schemas.common import RequestModel

DAY = 86_400
OAUTH_CLIENT_EXAMPLE: JsonDict = {
    "id": "oac_01jc8a0c2e4g6j8m0p2r4t6w8y",
    "name": "Acme Telehealth backend",
    "scope": "system/clients.cruds system/assignments.cruds",
    "created_at": "2026-11-22T09:00:00Z",
    "secret_rotated_at": "2026-12-02T09:00:00Z",
    "previous_secret_expires_at": "2026-12-03T09:00:00Z",
    "revoked_at": None,
}


class OAuthClientOut(BaseModel):
    """One of the tenant's OAuth clients (a backend's credentials), never its secrets."""

    model_config = ConfigDict(json_schema_extra={"examples": [OAUTH_CLIENT_EXAMPLE]})

    id: str
    name: str
    scope: str = Field(description="The scopes it may hold, space-separated.")
    created_at: datetime
    secret_rotated_at: datetime | None = Field(description="When its secret was last rotated.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret replaced by the last rotation still works; null when "
        "no old secret works any more."
    )
    revoked_at: datetime | None = Field(
        description="Set once revoked: no secret of it and no token it obtained works."
    )

    @classmethod
    def of(cls, client: OAuthClient) -> OAuthClientOut:
        return cls(
            id=client.id,
            name=client.name,
            scope=client.allowed_scopes,
            created_at=client.created_at,
            secret_rotated_at=client.secret_rotated_at,
            previous_secret_expires_at=client.previous_secret_expires_at,
            revoked_at=client.revoked_at,
        )


class RotationIn(RequestModel):
    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"old_secret_expires_in": 3600}]}
    )

    old_secret_expires_in: int = Field(
        default=DAY,
        ge=0,
        le=7 * DAY,
        description="Seconds the replaced secret keeps working, so that every instance of your "
        "backend can switch (default 24 h, at most 7 days). 0 ends it at once: for a leak.",
    )


class RotatedClientOut(OAuthClientOut):
    """The client after a rotation, with its new secret: shown this once, kept only hashed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**OAUTH_CLIENT_EXAMPLE, "client_secret": "hws_example-only-not-real"}]
        }
    )

    client_secret: str
