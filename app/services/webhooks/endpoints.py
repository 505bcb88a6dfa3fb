"""Webhook endpoints and events, as the vendor's backend manages them (system tokens only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.core.config import Settings
from app.core.data_keys import DataKeys
from app.core.errors import Conflict, NotFound, ValidationFailed, field_error
from app.core.ids import new_id
from app.core.outbound import OutboundPolicy, UnsafeUrl, resolve_safe
from app.core.pagination import page_of, paginate
from app.core.security import Principal
from app.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.schemas.webhooks import TEST_EVENT, EndpointCreate, EndpointUpdate
from app.services.events import EventType
from app.services.webhooks import sealed_secrets
from app.services.webhooks.fan_out import wants
from app.services.webhooks.signing import new_signing_secret

EVENT_TYPES = frozenset({t.value for t in EventType} | {TEST_EVENT})


async def _check_url(settings: Settings, url: str) -> None:
    policy = OutboundPolicy(
        allow_http=settings.outbound_allow_http, allowed_hosts=settings.allowed_outbound_hosts
    )
    try:
        await resolve_safe(url, policy)
    except UnsafeUrl as exc:
        raise ValidationFailed.for_field("body", ["url"], str(exc), "unsafe_url") from exc


def _check_types(event_types: Sequence[str]) -> None:
    errors = [
        field_error("body", ["event_types", i], "is not an event type", "enum")
        for i, name in enumerate(event_types)
        if name not in EVENT_TYPES
    ]
    if errors:
        raise ValidationFailed(errors=errors)


async def create(
    session: AsyncSession, principal: Principal, settings: Settings, body: EndpointCreate
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret, in the clear this once: only its sealed form is kept."""
    _check_types(body.event_types)
    await _check_url(settings, body.url)
    # Its id chosen now, not at the flush: the sealed secret is bound to it.
    endpoint_id, secret = new_id("whe"), new_signing_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        tenant_id=principal.tenant_id,
        url=body.url,
        description=body.description,
        event_types=sorted(set(body.event_types)),
        enabled=body.enabled,
        disabled_reason=None if body.enabled else "manual",
        secret=sealed_secrets.seal(DataKeys.from_settings(settings), endpoint_id, "secret", secret),
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get(session: AsyncSession, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == principal.tenant_id
        )
    )
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


async def search(
    session: AsyncSession, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[WebhookEndpoint], str | None]:
    statement = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id)
    rows = (await session.scalars(paginate(statement, WebhookEndpoint.id, limit, cursor))).all()
    return page_of(rows, limit, lambda e: e.id)


async def update(
    session: AsyncSession,
    settings: Settings,
    endpoint: WebhookEndpoint,
    body: EndpointUpdate,
    now: datetime,
) -> WebhookEndpoint:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None and changes["url"] != endpoint.url:
        await _check_url(settings, changes["url"])
        endpoint.url = changes["url"]
    if changes.get("event_types") is not None:
        _check_types(changes["event_types"])
        endpoint.event_types = sorted(set(changes["event_types"]))
    if "description" in changes:
        endpoint.description = changes["description"]
    if changes.get("enabled") is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
        endpoint.failing_since = None
    elif changes.get("enabled") is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, "manual", now
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession,
    settings: Settings,
    endpoint: WebhookEndpoint,
    overlap: timedelta,
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    """A new secret signs from now on; the old one signs beside it until the overlap ends.
    Returns the new secret in the clear, this once."""
    keys = DataKeys.from_settings(settings)
    # The old secret is sealed anew for its new column: a ciphertext is bound to its column.
    old = sealed_secrets.unseal(keys, endpoint.id, "secret", endpoint.secret)
    endpoint.previous_secret = (
        sealed_secrets.seal(keys, endpoint.id, "previous_secret", old) if overlap else None
    )
    endpoint.previous_secret_expires_at = now + overlap if overlap else None
    secret = new_signing_secret()
    endpoint.secret = sealed_secrets.seal(keys, endpoint.id, "secret", secret)
    await session.flush()
    return endpoint, secret


def send_test(session: AsyncSession, endpoint: WebhookEndpoint) -> Event:
    event = Event(
        tenant_id=endpoint.tenant_id,
        type=TEST_EVENT,
        client_id=None,
        subject={"endpoint_id": endpoint.id},
        changed_fields=[],
        endpoint_id=endpoint.id,
    )
    session.add(event)
    return event


async def deliveries(
    session: AsyncSession, endpoint: WebhookEndpoint, *, limit: int, cursor: str | None
) -> tuple[list[tuple[WebhookDelivery, str, list[WebhookAttempt]]], str | None]:
    statement = (
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
    )
    rows = (await session.execute(paginate(statement, WebhookDelivery.id, limit, cursor))).all()
    page, next_cursor = page_of(rows, limit, lambda row: row[0].id)
    attempts: dict[str, list[WebhookAttempt]] = defaultdict(list)
    if page:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([row[0].id for row in page]))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, event_type, attempts[d.id]) for d, event_type in page], next_cursor


# Events


async def search_events(
    session: AsyncSession,
    principal: Principal,
    *,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Event], str | None]:
    statement = select(Event).where(
        Event.tenant_id == principal.tenant_id, Event.endpoint_id.is_(None)
    )
    if event_type is not None:
        statement = statement.where(Event.type == event_type)
    if since is not None:
        statement = statement.where(Event.occurred_at >= since)
    if until is not None:
        statement = statement.where(Event.occurred_at < until)
    rows = (await session.scalars(paginate(statement, Event.id, limit, cursor))).all()
    return page_of(rows, limit, lambda e: e.id)


async def get_event(session: AsyncSession, principal: Principal, event_id: str) -> Event:
    event = await session.scalar(
        select(Event).where(Event.id == event_id, Event.tenant_id == principal.tenant_id)
    )
    if event is None:
        raise NotFound("No such event.")
    return event


async def redeliver(
    session: AsyncSession,
    principal: Principal,
    event: Event,
    endpoint_id: str | None,
    now: datetime,
) -> int:
    if event.fanned_out_at is None:
        raise Conflict("The event has not been sent yet; it will be shortly.")
    endpoints = await _target_endpoints(session, principal, endpoint_id)
    if endpoint_id is None:
        # "All" is every endpoint that would get this event now, not one that never asked.
        endpoints = [e for e in endpoints if wants(e, event.id, event.type, event.endpoint_id)]
    for endpoint in endpoints:
        session.add(
            WebhookDelivery(
                tenant_id=event.tenant_id,
                endpoint_id=endpoint.id,
                event_id=event.id,
                state="pending",
                attempt_count=0,
                next_attempt_at=now,
            )
        )
    await session.flush()
    return len(endpoints)


async def redeliver_failed(
    session: AsyncSession,
    principal: Principal,
    *,
    since: datetime,
    until: datetime,
    endpoint_id: str | None,
    now: datetime,
) -> int:
    """Every failed delivery of an event in the range goes out again, as a new delivery,
    unless that event is already on its way to that endpoint again or got there since."""
    endpoints = {e.id for e in await _target_endpoints(session, principal, endpoint_id)}
    other = aliased(WebhookDelivery)
    recovered = exists().where(
        other.endpoint_id == WebhookDelivery.endpoint_id,
        other.event_id == WebhookDelivery.event_id,
        other.state.in_(("pending", "delivered")),
    )
    failed = (
        await session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.event_id)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(
                WebhookDelivery.tenant_id == principal.tenant_id,
                WebhookDelivery.state == "failed",
                WebhookDelivery.endpoint_id.in_(endpoints),
                Event.occurred_at >= since,
                Event.occurred_at < until,
                ~recovered,
            )
            .distinct()
        )
    ).all()
    for target, event_id in failed:
        session.add(
            WebhookDelivery(
                tenant_id=principal.tenant_id,
                endpoint_id=target,
                event_id=event_id,
                state="pending",
                attempt_count=0,
                next_attempt_at=now,
            )
        )
    await session.flush()
    return len(failed)


async def _target_endpoints(
    session: AsyncSession, principal: Principal, endpoint_id: str | None
) -> list[WebhookEndpoint]:
    if endpoint_id is not None:
        return [await get(session, principal, endpoint_id)]
    return list(
        (
            await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.tenant_id == principal.tenant_id,
                    WebhookEndpoint.enabled.is_(True),
                )
            )
        ).all()
    )
