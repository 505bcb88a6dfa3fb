from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models.audit import Outcome
from app.schemas.audit import AuditEventOut
from app.schemas.common import Instant
from app.services import audit

router = APIRouter(prefix="/v1/audit-events", tags=["audit"], route_class=AppRoute)


@router.get(
    "",
    operation_id="list_audit_events",
    summary="Who read or changed which client's data",
    description="For your backend (`system`) only. Every read, listing and change of a client's "
    "data in the tenant, and every refusal of one to a caller of the tenant (`outcome: denied`): "
    "who, with which OAuth client and token, from where, on which resource; never the data "
    "itself. Filter by client, actor, outcome or time; newest first.",
    responses=problem_responses(401, 403, 422),
)
async def list_audit_events(
    session: SessionDep,
    principal: Annotated[Principal, require("audit", "s")],
    client_id: Annotated[str | None, Query(max_length=40)] = None,
    actor_id: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[
        Outcome | None, Query(description="Only allowed (or only denied) accesses.")
    ] = None,
    since: Annotated[Instant | None, Query(description="From this instant (inclusive).")] = None,
    until: Annotated[Instant | None, Query(description="Before this instant.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AuditEventOut]:
    events, next_cursor = await audit.search(
        session,
        principal,
        client_id=client_id,
        actor_id=actor_id,
        outcome=outcome,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return Page(
        data=[AuditEventOut.model_validate(e, from_attributes=True) for e in events],
        next_cursor=next_cursor,
    )
