"""Getting events to vendors: fan-out, dispatch, retries.

1. **Fan-out** (one transaction): events not yet fanned out get their per-tenant sequence
   number and one delivery per subscribed, enabled endpoint of their tenant.
2. **Claim** (one transaction): due deliveries are leased (`FOR UPDATE SKIP LOCKED` where the
   database has it); everything needed to send them is read now.
3. **Send** (no transaction): the POSTs, concurrently, within limits overall and per endpoint;
   one that could not start in time to finish within the lease is handed back unsent.
4. **Record** (one transaction): one attempt row per POST; the delivery is delivered, retried
   on the schedule, or failed; the endpoint is disabled on 410 or after 5 days of failures.

A worker that dies between 2 and 4 leaves its leases to run out; the deliveries are then sent
again, with the same `webhook-id` (the event's id), which is what at-least-once means.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.outbound import UnsafeUrl
from app.models import Event, Tenant, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.services.webhooks import signing as webhook_signing
from app.services.webhooks.payloads import body as payload_body

# After the first attempt fails: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts in all).
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1
MAX_RETRY_AFTER = timedelta(hours=24)
FAILING_LIMIT = timedelta(days=5)
LEASE = timedelta(seconds=60)
RESPONSE_BODY_LIMIT = 2048


async def fan_out(session: AsyncSession, now: datetime, batch_size: int) -> int:
    events = list(
        (
            await session.scalars(
                select(Event)
                .where(Event.fanned_out_at.is_(None))
                .order_by(Event.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not events:
        return 0
    by_tenant: dict[str, list[Event]] = defaultdict(list)
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
            event.sequence = first + offset
            event.fanned_out_at = now
            for endpoint in endpoints_of[tenant_id]:
                if wants(endpoint, event):
                    session.add(_delivery(endpoint, event, now))
    await session.flush()
    return len(events)


def wants(endpoint: WebhookEndpoint, event: Event) -> bool:
    """Whether the endpoint gets this event: subscribed and enabled (a test event: its own)."""
    if event.endpoint_id is not None:  # a test event, for one endpoint only
        return event.endpoint_id == endpoint.id
    return endpoint.enabled and (not endpoint.event_types or event.type in endpoint.event_types)


def _delivery(endpoint: WebhookEndpoint, event: Event, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        tenant_id=event.tenant_id,
        endpoint_id=endpoint.id,
        event_id=event.id,
        state="pending",
        attempt_count=0,
        next_attempt_at=now,
    )


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    endpoint_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    attempt: int


@dataclass(frozen=True)
class Outcome:
    outgoing: Outgoing
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    response_body: str | None
    retry_after: timedelta | None
    error: str | None
    # False: queued too long to be sent safely within the lease; handed back, not attempted.
    sent: bool = True

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def claim(
    session: AsyncSession, now: datetime, batch_size: int, owner: str, lease: timedelta = LEASE
) -> list[Outgoing]:
    free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now)
    deliveries = list(
        (
            await session.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.state == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    free,
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not deliveries:
        return []
    events = {
        e.id: e
        for e in await session.scalars(
            select(Event).where(Event.id.in_({d.event_id for d in deliveries}))
        )
    }
    endpoints = {
        e.id: e
        for e in await session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.id.in_({d.endpoint_id for d in deliveries})
            )
        )
    }
    timestamp = int(now.timestamp())
    outgoing = []
    for delivery in deliveries:
        endpoint, event = endpoints[delivery.endpoint_id], events[delivery.event_id]
        if not endpoint.enabled and event.endpoint_id is None:
            delivery.state, delivery.next_attempt_at = "cancelled", None
            continue
        delivery.lease_owner, delivery.lease_until = owner, now + lease
        body = payload_body(event)
        outgoing.append(
            Outgoing(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                headers=webhook_signing.headers(
                    signing_secrets(endpoint, now), event.id, timestamp, body
                ),
                body=body,
                attempt=delivery.attempt_count + 1,
            )
        )
    await session.flush()
    return outgoing


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    in_use = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        in_use.append(endpoint.previous_secret)
    return in_use


class Sender:
    """The POSTs, outside any transaction, within limits overall and per endpoint.

    `deadline` bounds one whole POST, answer included (httpx's timeout bounds each read only,
    so a receiver dripping its answer byte by byte could otherwise outlast the lease).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_concurrency: int,
        per_endpoint: int,
        deadline: float | None = None,
    ) -> None:
        self.http = http
        self.overall = asyncio.Semaphore(max_concurrency)
        self.per_endpoint_limit = per_endpoint
        self.per_endpoint: dict[str, asyncio.Semaphore] = {}
        self.deadline = deadline

    async def send_all(
        self, outgoing: Sequence[Outgoing], now: datetime, *, send_by: float | None = None
    ) -> list[Outcome]:
        """send_by (time.monotonic()): a POST that would start later is not sent at all."""
        return list(await asyncio.gather(*(self._send(o, now, send_by) for o in outgoing)))

    async def _send(self, outgoing: Outgoing, now: datetime, send_by: float | None) -> Outcome:
        endpoint_limit = self.per_endpoint.setdefault(
            outgoing.endpoint_id, asyncio.Semaphore(self.per_endpoint_limit)
        )
        async with self.overall, endpoint_limit:
            if send_by is not None and time.monotonic() > send_by:
                # Queued behind slow POSTs to the same endpoint: sent now, it could still be in
                # flight when our lease ends and another worker sends it too. Handed back.
                return Outcome(outgoing, now, None, 0, None, None, None, sent=False)
            started = time.perf_counter()
            status = retry_after = error = text = None
            try:
                async with (
                    asyncio.timeout(self.deadline),
                    self.http.stream(
                        "POST", outgoing.url, content=outgoing.body, headers=outgoing.headers
                    ) as response,
                ):
                    status = response.status_code
                    retry_after = _retry_after(response.headers.get("retry-after"), now)
                    # Only what we keep is read: a receiver cannot make us hold a huge answer.
                    text = (await _prefix(response, RESPONSE_BODY_LIMIT)).decode("utf-8", "replace")
            except UnsafeUrl as exc:
                error = f"refused: {exc}"
            except (httpx.TimeoutException, TimeoutError):
                error = "timeout"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            except Exception as exc:
                # Anything else odd about one receiver is its attempt's failure: raised, it
                # would sink the whole batch unrecorded, to be sent again after every lease.
                error = type(exc).__name__
            latency = int((time.perf_counter() - started) * 1000)
        return Outcome(outgoing, now, status, latency, text, retry_after, error)


async def _prefix(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Seconds or an HTTP date; None if neither. Never raises: the receiver wrote it."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # "²".isdigit() is true too, and int() refuses it
        # A number too big for a timedelta (or for int()) asks for more than we would wait.
        if len(value) > 9:
            return MAX_RETRY_AFTER
        return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC, by RFC 5322
            when = when.replace(tzinfo=UTC)
        return when - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def next_attempt(attempt: int, now: datetime, retry_after: timedelta | None) -> datetime | None:
    """When to try again after failed attempt number `attempt` (1-based); None: give up."""
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311
    if retry_after is not None:
        # Honoured, within bounds: never sooner than asked, never later than a day.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


async def record(
    session: AsyncSession, outcomes: Sequence[Outcome], owner: str, now: datetime
) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    if not outcomes:
        return counts
    # Endpoints first and in id order, deliveries second, the same order in every worker:
    # two workers recording for the same endpoints, or one disabling an endpoint (which
    # updates the other's deliveries), must not lock in opposite orders and deadlock.
    endpoints = {
        e.id: e
        for e in await session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_({o.outgoing.endpoint_id for o in outcomes}))
            .order_by(WebhookEndpoint.id)
            .with_for_update()
        )
    }
    deliveries = {
        d.id: d
        for d in await session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.id.in_([o.outgoing.delivery_id for o in outcomes]),
                WebhookDelivery.lease_owner == owner,
            )
            .order_by(WebhookDelivery.id)
            .with_for_update()
        )
    }
    for outcome in outcomes:
        delivery = deliveries.get(outcome.outgoing.delivery_id)
        if delivery is None:  # our lease ran out and another worker took it over
            counts["lease_lost"] += 1
            continue
        if not outcome.sent:  # handed back unsent: due as it was, for the next claim
            delivery.lease_owner = delivery.lease_until = None
            counts["deferred"] += 1
            continue
        endpoint = endpoints[delivery.endpoint_id]
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                number=outcome.outgoing.attempt,
                attempted_at=outcome.attempted_at,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                response_body=outcome.response_body,
                error=outcome.error,
            )
        )
        delivery.attempt_count = outcome.outgoing.attempt
        delivery.last_status = outcome.status_code
        delivery.lease_owner = delivery.lease_until = None
        if outcome.delivered:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
            endpoint.failing_since, endpoint.last_success_at = None, now
            counts["delivered"] += 1
            continue
        endpoint.failing_since = endpoint.failing_since or now
        if outcome.status_code == 410:
            await _disable(session, endpoint, "gone", now)
        elif now - endpoint.failing_since >= FAILING_LIMIT:
            await _disable(session, endpoint, "failing", now)
        retry_at = next_attempt(outcome.outgoing.attempt, now, outcome.retry_after)
        if endpoint.enabled and retry_at is not None:
            delivery.next_attempt_at = retry_at
            counts["retrying"] += 1
        else:
            delivery.state, delivery.next_attempt_at = "failed", None
            counts["failed"] += 1
    await session.flush()
    return counts


async def _disable(
    session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime
) -> None:
    if not endpoint.enabled:
        return
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.state == "pending")
        .values(state="cancelled", next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


async def prune(session: AsyncSession, now: datetime, batch_size: int, keep: timedelta) -> int:
    """Events sent more than `keep` ago (with their deliveries and attempts), and attempts
    older than `keep`, go.

    An event's age is counted from its fan-out, on the worker's own clock like `now`: an event
    that has not been sent yet (a worker stopped for weeks, a backlog) is never removed
    unsent, nor one with a delivery still pending (a late replay)."""
    cutoff = now - keep
    pending = exists().where(
        WebhookDelivery.event_id == Event.id, WebhookDelivery.state == "pending"
    )
    old_events = list(
        (
            await session.scalars(
                select(Event.id).where(Event.fanned_out_at < cutoff, ~pending).limit(batch_size)
            )
        ).all()
    )
    old_attempts = list(
        (
            await session.scalars(
                select(WebhookAttempt.id)
                .where(WebhookAttempt.attempted_at < cutoff)
                .limit(batch_size)
            )
        ).all()
    )
    if old_attempts:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.id.in_(old_attempts)))
    if old_events:
        await session.execute(delete(Event).where(Event.id.in_(old_events)))
    return max(len(old_events), len(old_attempts))
