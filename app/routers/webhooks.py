from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.etags import IfMatchHeader, check_if_match, set_etag
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import WebhookEndpoint
from app.schemas.webhooks import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventOut,
    RotateSecret,
)
from app.services.webhooks import endpoints as webhooks
from app.services.webhooks.payloads import payload

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"], route_class=AppRoute)
EndpointId = Annotated[str, Path(max_length=40)]


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint, from_attributes=True)


def with_secret(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    # The secret in the clear comes from the service: the row holds only its sealed form.
    return EndpointWithSecret(**endpoint_out(endpoint).model_dump(), secret=secret)


@router.post(
    "",
    status_code=201,
    operation_id="create_webhook_endpoint",
    summary="Register a URL for our events",
    description="For your backend (`system`). https only; the URL may not resolve to a "
    "private, loopback, link-local or metadata address (422 naming `/url`). `event_types` "
    "empty means every type. The `whsec_` signing secret is returned now and on rotation only: "
    "keep it to verify deliveries (Standard Webhooks, see the `webhooks` section).",
    responses=problem_responses(401, 403, 422),
)
async def create_webhook_endpoint(
    body: EndpointCreate,
    request: Request,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("webhooks", "c")],
) -> EndpointWithSecret:
    endpoint, secret = await webhooks.create(session, principal, request.app.state.settings, body)
    set_etag(response, endpoint.id, endpoint.version)
    return with_secret(endpoint, secret)


@router.get(
    "",
    operation_id="list_webhook_endpoints",
    summary="List webhook endpoints",
    description="Your tenant's endpoints, newest first, without their secrets.",
    responses=problem_responses(401, 403, 422),
)
async def list_webhook_endpoints(
    session: SessionDep,
    principal: Annotated[Principal, require("webhooks", "s")],
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EndpointOut]:
    items, next_cursor = await webhooks.search(session, principal, limit=limit, cursor=cursor)
    return Page(data=[endpoint_out(e) for e in items], next_cursor=next_cursor)


@router.get(
    "/{endpoint_id}",
    operation_id="get_webhook_endpoint",
    summary="Read a webhook endpoint (and whether it was disabled, and why)",
    description="`disabled_reason` says why it gets nothing: `manual` (you), `gone` (it "
    "answered 410) or `failing` (no success for 5 days); `failing_since` and `last_success_at` "
    "show how it is doing. Another tenant's endpoint is 404.",
    responses=problem_responses(401, 403, 404),
)
async def get_webhook_endpoint(
    endpoint_id: EndpointId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("webhooks", "r")],
) -> EndpointOut:
    endpoint = await webhooks.get(session, principal, endpoint_id)
    set_etag(response, endpoint.id, endpoint.version)
    return endpoint_out(endpoint)


@router.patch(
    "/{endpoint_id}",
    operation_id="update_webhook_endpoint",
    summary="Change, disable or re-enable a webhook endpoint",
    description="Only the fields sent change; a new URL is checked as on creation. "
    "Re-enabling clears the failure record; replay what it missed with "
    "`POST /v1/events/redeliver`. Send the `ETag` as `If-Match` (412 if stale).",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def update_webhook_endpoint(
    endpoint_id: EndpointId,
    body: EndpointUpdate,
    request: Request,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("webhooks", "u")],
    now: NowDep,
    if_match: IfMatchHeader = None,
) -> EndpointOut:
    endpoint = await webhooks.get(session, principal, endpoint_id)
    check_if_match(if_match, endpoint.id, endpoint.version)
    endpoint = await webhooks.update(session, request.app.state.settings, endpoint, body, now)
    set_etag(response, endpoint.id, endpoint.version)
    return endpoint_out(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    operation_id="delete_webhook_endpoint",
    summary="Delete a webhook endpoint and its delivery log",
    description="Nothing more is sent to it, and its pending deliveries go with it.",
    responses=problem_responses(401, 403, 404, 412),
)
async def delete_webhook_endpoint(
    endpoint_id: EndpointId,
    session: SessionDep,
    principal: Annotated[Principal, require("webhooks", "d")],
    if_match: IfMatchHeader = None,
) -> None:
    endpoint = await webhooks.get(session, principal, endpoint_id)
    check_if_match(if_match, endpoint.id, endpoint.version)
    await session.delete(endpoint)
    await session.flush()


@router.post(
    "/{endpoint_id}/rotate-secret",
    operation_id="rotate_webhook_secret",
    summary="Rotate the signing secret; the old one keeps signing for the overlap",
    description="Returns the new secret (once). Until `previous_secret_expires_at` every "
    "delivery carries two signatures, one per secret, so receivers can switch at their pace; "
    "`overlap_hours: 0` retires the old secret at once.",
    responses=problem_responses(401, 403, 404, 422),
)
async def rotate_webhook_secret(
    endpoint_id: EndpointId,
    body: RotateSecret,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("webhooks", "u")],
    now: NowDep,
) -> EndpointWithSecret:
    endpoint = await webhooks.get(session, principal, endpoint_id)
    endpoint, secret = await webhooks.rotate_secret(
        session, request.app.state.settings, endpoint, timedelta(hours=body.overlap_hours), now
    )
    return with_secret(endpoint, secret)


@router.post(
    "/{endpoint_id}/test",
    status_code=202,
    operation_id="send_webhook_test",
    summary="Send a `webhook.test` event to this endpoint",
    description="To this endpoint only, even a disabled one, signed like any event; it shows "
    "in this endpoint's delivery log within seconds. Returns the event as it will be sent "
    "(its `sequence` is set when it is).",
    responses=problem_responses(401, 403, 404),
)
async def send_webhook_test(
    endpoint_id: EndpointId,
    session: SessionDep,
    principal: Annotated[Principal, require("webhooks", "u")],
) -> EventOut:
    endpoint = await webhooks.get(session, principal, endpoint_id)
    event = webhooks.send_test(session, endpoint)
    await session.flush()
    return EventOut.model_validate(payload(event))


@router.get(
    "/{endpoint_id}/deliveries",
    operation_id="list_webhook_deliveries",
    summary="Deliveries to this endpoint, newest first, with every attempt",
    description="Each delivery's state (`pending`, `delivered`, `failed`, `cancelled`) and "
    "next attempt, and each attempt's time, status code, latency, the first 2 KiB of the "
    "answer, or the error. Kept 30 days.",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_webhook_deliveries(
    endpoint_id: EndpointId,
    session: SessionDep,
    principal: Annotated[Principal, require("webhooks", "r")],
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryOut]:
    endpoint = await webhooks.get(session, principal, endpoint_id)
    rows, next_cursor = await webhooks.deliveries(session, endpoint, limit=limit, cursor=cursor)
    return Page(
        data=[
            DeliveryOut(
                id=delivery.id,
                event_id=delivery.event_id,
                event_type=event_type,
                state=delivery.state,
                attempt_count=delivery.attempt_count,
                next_attempt_at=delivery.next_attempt_at,
                delivered_at=delivery.delivered_at,
                created_at=delivery.created_at,
                attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
            )
            for delivery, event_type, attempts in rows
        ],
        next_cursor=next_cursor,
    )
