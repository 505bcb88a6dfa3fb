from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.schemas.common import Instant
from app.schemas.webhooks import EventOut, Redeliver, RedeliverFailed, RedeliveryOut
from app.services.webhooks import endpoints as webhooks
from app.services.webhooks.payloads import payload

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=AppRoute)


@router.get(
    "",
    operation_id="list_events",
    summary="The events of your tenant, newest first, as webhooks carry them",
    description="Filter by `type`, and by when they happened: `since` (at or after) and "
    "`until` (before), with an offset. Ids and field names only, never content; kept 30 "
    "days. `sequence` is null until the event is sent.",
    responses=problem_responses(401, 403, 422),
)
async def list_events(
    session: SessionDep,
    principal: Annotated[Principal, require("events", "s")],
    type: Annotated[str | None, Query(max_length=60, description="One event type.")] = None,
    since: Annotated[Instant | None, Query(description="At or after.")] = None,
    until: Annotated[Instant | None, Query(description="Before.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EventOut]:
    events, next_cursor = await webhooks.search_events(
        session, principal, event_type=type, since=since, until=until, limit=limit, cursor=cursor
    )
    return Page(data=[EventOut.model_validate(payload(e)) for e in events], next_cursor=next_cursor)


@router.post(
    "/redeliver",
    operation_id="redeliver_failed_events",
    summary="Send again every failed delivery of the events in a time range",
    description="For after an outage: each failed delivery of an event that happened in "
    "[`since`, `until`) goes out again (to `endpoint_id` only, if given), unless it is "
    "already on its way again or was delivered since. Returns how many were queued.",
    responses=problem_responses(401, 403, 404, 422),
)
async def redeliver_failed_events(
    body: RedeliverFailed,
    session: SessionDep,
    principal: Annotated[Principal, require("events", "u")],
    now: NowDep,
) -> RedeliveryOut:
    count = await webhooks.redeliver_failed(
        session,
        principal,
        since=body.since,
        until=body.until,
        endpoint_id=body.endpoint_id,
        now=now,
    )
    return RedeliveryOut(deliveries=count)


@router.get(
    "/{event_id}",
    operation_id="get_event",
    summary="One event, as webhooks carry it",
    description="Another tenant's event, or one older than 30 days, is 404.",
    responses=problem_responses(401, 403, 404),
)
async def get_event(
    event_id: Annotated[str, Path(max_length=40)],
    session: SessionDep,
    principal: Annotated[Principal, require("events", "r")],
) -> EventOut:
    return EventOut.model_validate(payload(await webhooks.get_event(session, principal, event_id)))


@router.post(
    "/{event_id}/redeliver",
    operation_id="redeliver_event",
    summary="Send an event again, to one endpoint or to all",
    description="`{}` sends it to every enabled endpoint subscribed to its type, "
    '`{"endpoint_id": ...}` to that one. The same message (the same `webhook-id`), signed '
    "afresh. 409 if it has not been sent yet.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def redeliver_event(
    event_id: Annotated[str, Path(max_length=40)],
    body: Redeliver,
    session: SessionDep,
    principal: Annotated[Principal, require("events", "u")],
    now: NowDep,
) -> RedeliveryOut:
    event = await webhooks.get_event(session, principal, event_id)
    count = await webhooks.redeliver(session, principal, event, body.endpoint_id, now)
    return RedeliveryOut(deliveries=count)
