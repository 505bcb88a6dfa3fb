"""Fan-out: events not yet sent on get their per-tenant sequence number and one delivery per
endpoint that was subscribed when the event was recorded.

"Subscribed when it was recorded" (as Svix does it): an endpoint made after the event does not
get it, however late the worker fans it out; an endpoint disabled or deleted since gets nothing
more. The event types are those the endpoint wants when the event is fanned out, normally
milliseconds after it was recorded.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import wakeups
from app.core.ids import made_before, new_id
from app.models import Event, Tenant, WebhookDelivery, WebhookEndpoint


async def fan_out(session: AsyncSession, now: datetime, batch_size: int) -> int:
    """Set-based: one locked read of the batch, one of the endpoints, then one executemany
    UPDATE of the events and one INSERT of their deliveries."""
    events = (
        await session.execute(
            select(Event.id, Event.tenant_id, Event.type, Event.endpoint_id)
            .where(Event.fanned_out_at.is_(None))
            .order_by(Event.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not events:
        return 0
    by_tenant: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_tenant[event.tenant_id].append(event)
    endpoints = (
        await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant_id.in_(list(by_tenant)))
        )
    ).all()
    endpoints_of: dict[str, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in endpoints:
        endpoints_of[endpoint.tenant_id].append(endpoint)
    numbered: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for tenant_id, tenant_events in sorted(by_tenant.items()):
        # The tenant row's counter hands out the numbers; its lock orders concurrent fan-outs.
        last = await session.scalar(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(event_sequence=Tenant.event_sequence + len(tenant_events))
            .returning(Tenant.event_sequence)
        )
        first = (last or len(tenant_events)) - len(tenant_events) + 1
        for offset, event in enumerate(tenant_events):
            numbered.append({"id": event.id, "sequence": first + offset, "fanned_out_at": now})
            deliveries.extend(
                {
                    "id": new_id("whd"),
                    "tenant_id": tenant_id,
                    "endpoint_id": endpoint.id,
                    "event_id": event.id,
                    "state": "pending",
                    "attempt_count": 0,
                    "next_attempt_at": now,
                }
                for endpoint in endpoints_of[tenant_id]
                if wants(endpoint, event.id, event.type, event.endpoint_id)
            )
    await session.execute(update(Event), numbered)
    if deliveries:
        await session.execute(insert(WebhookDelivery), deliveries)
        wakeups.mark(session, wakeups.DELIVERIES)
    return len(events)


def wants(
    endpoint: WebhookEndpoint, event_id: str, event_type: str, for_endpoint: str | None
) -> bool:
    """Whether the endpoint gets this event: subscribed when it was recorded, and enabled (a
    test event, `for_endpoint`: its own endpoint only)."""
    if for_endpoint is not None:
        return for_endpoint == endpoint.id
    return (
        endpoint.enabled
        and made_before(endpoint.id, event_id)
        and (not endpoint.event_types or event_type in endpoint.event_types)
    )
