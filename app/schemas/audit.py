from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AuditEventOut(BaseModel):
    """One read or change of a client's data: references only, never the data."""

    id: str
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    client_app_id: str
    token_id: str
    client_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    request_id: str | None
    ip: str | None
