from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models.audit import Outcome
from app.schemas.common import EXAMPLE_CLIENT_ID, EXAMPLE_CLINICIAN_ID, EXAMPLE_COMPLETION_ID


class AuditEventOut(BaseModel):
    """One read or change of a client's data, or a refusal of one: references only, never the
    data."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "aud_01jd5d8f0h2k4m6p8r0t2w4y6a",
                    "occurred_at": "2026-11-24T14:03:27Z",
                    "actor_kind": "clinician",
                    "actor_id": EXAMPLE_CLINICIAN_ID,
                    "client_app_id": "oac_01jc8a0c2e4g6j8m0p2r4t6w8y",
                    "token_id": "tok_01jd5d7e9g1j3m5p7r9t1v3x5z",
                    "client_id": EXAMPLE_CLIENT_ID,
                    "action": "read",
                    "outcome": "allowed",
                    "resource_type": "completion",
                    "resource_id": EXAMPLE_COMPLETION_ID,
                    "request_id": "3f2b9c7e5a1d4e8f9b0c6a2d4e6f8a1b",
                    "ip": "203.0.113.24",
                }
            ]
        }
    )

    id: str
    occurred_at: datetime
    actor_kind: str = Field(description="`system`, `clinician` or `client`: the token's kind.")
    actor_id: str = Field(
        description="Our id of the clinician or client, or the OAuth client for `system`."
    )
    client_app_id: str = Field(
        description="The OAuth client the token was issued to (`client_id`)."
    )
    token_id: str = Field(description="The access token's `jti`.")
    client_id: str | None = Field(description="The client whose data it was.")
    action: str = Field(
        description="`read`, `list`, `create`, `update`, `delete`, `erase` or `import`."
    )
    outcome: Outcome = Field(
        description="`allowed`, or `denied`: a caller of your tenant asked for an object of your "
        "tenant that they may not see (they were answered 404, as for no object at all) or may "
        "not change (403). Another tenant's callers never leave a row here."
    )
    resource_type: str = Field(description="Such as `client`, `assignment` or `completion`.")
    resource_id: str | None
    request_id: str | None = Field(
        description="The request's `X-Request-Id`: yours, if you sent one, else ours."
    )
    ip: str | None
