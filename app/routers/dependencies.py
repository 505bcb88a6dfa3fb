"""`Annotated` aliases that routes share: one line states what a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.schemas.common import ExternalId

ExternalIdFilter = Annotated[
    ExternalId | None, Query(description="Only the one with this vendor id.")
]
