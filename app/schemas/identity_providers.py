from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.schemas.common import RequestModel

MAX_TOKEN_LIFETIME_LIMIT = 30 * 86400

IDENTITY_PROVIDER_EXAMPLE: JsonDict = {
    "issuer": "https://id.vendor.example/",
    "jwks_url": "https://id.vendor.example/.well-known/jwks.json",
    "audience": "homework-api",
    "kind_claim": "homework_kind",
    "external_id_claim": "sub",
}


class IdentityProviderIn(RequestModel):
    """Trust the tenant's own identity provider: its access tokens are accepted directly."""

    model_config = RequestModel.model_config | ConfigDict(
        json_schema_extra={"examples": [IDENTITY_PROVIDER_EXAMPLE]}
    )

    issuer: str = Field(min_length=1, max_length=500, examples=["https://id.vendor.example/"])
    jwks_url: str = Field(
        min_length=1, max_length=2000, examples=["https://id.vendor.example/.well-known/jwks.json"]
    )
    audience: str = Field(min_length=1, max_length=500, examples=["homework-api"])
    kind_claim: str = Field(
        default="homework_kind",
        min_length=1,
        max_length=100,
        description="The claim whose value is `clinician` or `client`.",
    )
    external_id_claim: str = Field(
        default="sub",
        min_length=1,
        max_length=100,
        description="The claim that carries the vendor's id of the person (`external_id`).",
    )
    max_token_lifetime_seconds: int | None = Field(
        default=None,
        ge=60,
        le=MAX_TOKEN_LIFETIME_LIMIT,
        description="The longest `exp - iat` a token of this IdP may claim, in seconds (60 s to "
        "30 days). Null: the service's default, 24 hours unless its operator set another.",
    )


class IdentityProviderOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **IDENTITY_PROVIDER_EXAMPLE,
                    "max_token_lifetime_seconds": None,
                    "updated_at": "2026-11-03T09:12:44Z",
                }
            ]
        }
    )

    issuer: str
    jwks_url: str
    audience: str
    kind_claim: str
    external_id_claim: str
    max_token_lifetime_seconds: int | None
    updated_at: datetime
