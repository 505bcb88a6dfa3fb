from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.schemas.common import RequestModel

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


class IdentityProviderOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**IDENTITY_PROVIDER_EXAMPLE, "updated_at": "2026-11-03T09:12:44Z"}]
        }
    )

    issuer: str
    jwks_url: str
    audience: str
    kind_claim: str
    external_id_claim: str
    updated_at: datetime
