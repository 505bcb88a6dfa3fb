"""Dispatch, the database's side: which endpoints have due work, claiming their deliveries
fairly, keeping the leases true while the POSTs run, and recording what each attempt did.

The worker (app/worker/dispatcher.py) drives it and does the POSTs (app.services.webhooks.
sender) outside any transaction:

1. **Discover** the endpoints with due, unleased deliveries.
2. **Claim** (one transaction) up to `k` of them *per endpoint*, oldest first, so every endpoint
   with due work gets its turn and a backlog at one endpoint is never in front of another's.
   The lease runs from the clock read at the claim.
3. **Extend** the leases of what the worker still holds (queued or in flight), every few
   seconds, so that no other worker takes a delivery that is being sent.
4. **Record** (one transaction per batch of outcomes): one attempt row per POST; the delivery
   is delivered, retried on the schedule, or failed; the endpoint is disabled on 410 or after
   5 days of failures. **Release** hands back what was claimed but not sent: no attempt.

A worker that dies leaves its leases to run out; the deliveries are then sent again, with the
same `webhook-id` (the event's id), which is what at-least-once means.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from sqlalchemy import (
    ColumnElement,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.data_keys import DataKeys, Unsealable
from app.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.services.webhooks import sealed_secrets
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
LAST_SUCCESS_PRECISION = timedelta(seconds=1)
# What one claim statement takes at most, however many endpoints have due work: the rest wait
# for the next claim, a few milliseconds later, in the rotation's order.
MAX_ENDPOINTS_PER_CLAIM = 50
INTERRUPTED = "interrupted: the worker stopped during the attempt"
log = logging.getLogger("homework.webhooks")


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with all it takes to send it; it is signed when each attempt starts."""

    delivery_id: str
    endpoint_id: str
    tenant_id: str
    event_id: str
    url: str
    secrets: tuple[str, ...]
    body: bytes
    attempt: int
    # The event's origin (app.core.trace_context): the attempt's traceparent continues it.
    traceparent: str | None = None


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    response_body: str | None = None
    retry_after: timedelta | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def interrupted(self) -> bool:
        return self.error == INTERRUPTED

    @property
    def unanswered(self) -> bool:
        """A timeout or a failed connection: what the circuit breaker counts."""
        return self.status_code is None and not self.interrupted

    @property
    def kind(self) -> str:
        """delivered, rejected (an answer other than 2xx), unanswered or interrupted."""
        if self.delivered:
            return "delivered"
        if self.interrupted:
            return "interrupted"
        return "unanswered" if self.unanswered else "rejected"


# Written into the SQL, not bound: a prepared statement's generic plan can use the partial
# indexes (`WHERE state = 'pending'`) only if the predicate is there to match.
PENDING: ColumnElement[str] = literal_column("'pending'")


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        WebhookDelivery.state == PENDING,
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now),
    ]


async def due_endpoints(session: AsyncSession, now: datetime) -> dict[str, str]:
    """The endpoints with due, unleased deliveries: endpoint id -> tenant id.

    One probe of `ix_webhook_deliveries_pending_endpoint` per endpoint (the endpoints are few)
    rather than a read of every due delivery, which a backlog makes tens of thousands."""
    # A scalar subquery with LIMIT 1, not EXISTS: PostgreSQL turns EXISTS into a semi-join
    # over every due delivery, and runs this once per endpoint instead.
    first_due = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.endpoint_id == WebhookEndpoint.id, *_due(now))
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.tenant_id).where(first_due.is_not(None))
    )
    return {endpoint_id: tenant_id for endpoint_id, tenant_id in rows.all()}


async def next_due_at(session: AsyncSession, now: datetime) -> datetime | None:
    """When the next retry that is not due yet comes due (the dispatcher sleeps until then)."""
    result: datetime | None = await session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.state == PENDING, WebhookDelivery.next_attempt_at > now
        )
    )
    return result


async def claim(
    session: AsyncSession,
    now: datetime,
    wanted: Mapping[str, int],
    owner: str,
    lease: timedelta,
    *,
    keys: DataKeys,
) -> list[Claimed]:
    """Lease up to `wanted[endpoint]` due deliveries of each endpoint, oldest first.

    One statement for all the endpoints: a union of one index range per endpoint
    (`ix_webhook_deliveries_pending_endpoint`), each locked with SKIP LOCKED, so that two
    workers claiming at once take different rows and never wait for each other."""
    wanted = {e: k for e, k in list(wanted.items())[:MAX_ENDPOINTS_PER_CLAIM] if k > 0}
    if not wanted:
        return []
    ranges = [
        select(WebhookDelivery.id)
        .where(WebhookDelivery.endpoint_id == endpoint_id, *_due(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(k)
        .with_for_update(skip_locked=True)
        .subquery()
        for endpoint_id, k in wanted.items()
    ]
    # Locked first, then leased by id: as `UPDATE ... WHERE id IN (that)` the planner may run
    # the subquery once per row, each run skipping only others' locks, and lease them all.
    ids = list((await session.scalars(union_all(*(select(r.c.id) for r in ranges)))).all())
    if not ids:
        return []
    leased = (
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), *_due(now))
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(
                WebhookDelivery.id,
                WebhookDelivery.endpoint_id,
                WebhookDelivery.tenant_id,
                WebhookDelivery.event_id,
                WebhookDelivery.attempt_count,
                WebhookDelivery.next_attempt_at,
            )
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not leased:
        return []
    events = {
        e.id: e
        for e in await session.scalars(select(Event).where(Event.id.in_({r[3] for r in leased})))
    }
    endpoints = {
        e.id: e
        for e in await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_({r[1] for r in leased}))
        )
    }
    secrets = {e.id: _unsealed_secrets(keys, e, now) for e in endpoints.values()}
    claimed, cancelled = [], []
    for delivery_id, endpoint_id, tenant_id, event_id, attempts, _ in sorted(
        leased, key=lambda row: (row[5], row[0])
    ):
        endpoint, event = endpoints[endpoint_id], events[event_id]
        if not endpoint.enabled and event.endpoint_id is None:
            cancelled.append(delivery_id)
            continue
        signing = secrets[endpoint_id]
        if signing is None:
            continue
        claimed.append(
            Claimed(
                delivery_id=delivery_id,
                endpoint_id=endpoint_id,
                tenant_id=tenant_id,
                event_id=event_id,
                url=endpoint.url,
                secrets=signing,
                body=payload_body(event),
                attempt=attempts + 1,
                traceparent=event.traceparent,
            )
        )
    if cancelled:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(cancelled))
            .values(state="cancelled", next_attempt_at=None, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
    return claimed


def signing_secrets(keys: DataKeys, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    in_use = [sealed_secrets.unseal(keys, endpoint.id, "secret", endpoint.secret)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        in_use.append(
            sealed_secrets.unseal(keys, endpoint.id, "previous_secret", endpoint.previous_secret)
        )
    return in_use


def _unsealed_secrets(
    keys: DataKeys, endpoint: WebhookEndpoint, now: datetime
) -> tuple[str, ...] | None:
    try:
        return tuple(signing_secrets(keys, endpoint, now))
    except Unsealable as error:
        # A key this process lacks (a ring not yet deployed to it) or an altered row: this
        # endpoint's deliveries wait out their lease for a worker that can sign them, and
        # every other endpoint's go on. The message names the place and kid, never a secret.
        log.error("webhook secret not unsealed", extra={"error": str(error)})
        return None


async def extend_leases(
    session: AsyncSession, ids: Collection[str], owner: str, until: datetime
) -> set[str]:
    """Renew our leases on `ids`; the ids whose lease is still ours (the others were lost)."""
    if not ids:
        return set()
    kept = await session.scalars(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(list(ids)), WebhookDelivery.lease_owner == owner)
        .values(lease_until=until)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return set(kept.all())


async def release(session: AsyncSession, ids: Collection[str], owner: str) -> None:
    """Hand back claimed deliveries that were not sent: due as they were, no attempt logged."""
    if ids:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ids)), WebhookDelivery.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def retry_after_of(value: str | None, now: datetime) -> timedelta | None:
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
    """One attempt row per outcome, and each delivery's new state: set-based statements (one
    SELECT, one executemany UPDATE, one INSERT), for a worker records a thousand a second."""
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
            .where(WebhookEndpoint.id.in_({o.claimed.endpoint_id for o in outcomes}))
            .order_by(WebhookEndpoint.id)
            .with_for_update()
        )
    }
    ours = set(
        (
            await session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.id.in_([o.claimed.delivery_id for o in outcomes]),
                    WebhookDelivery.lease_owner == owner,
                )
                .order_by(WebhookDelivery.id)
                .with_for_update()
            )
        ).all()
    )
    attempts: list[dict[str, object]] = []
    changes: list[dict[str, object]] = []
    for outcome in outcomes:
        claimed = outcome.claimed
        if claimed.delivery_id not in ours:  # our lease ran out and another worker took it
            counts["lease_lost"] += 1
            continue
        attempts.append(
            {
                "delivery_id": claimed.delivery_id,
                "number": claimed.attempt,
                "attempted_at": outcome.attempted_at,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "response_body": outcome.response_body,
                "error": outcome.error,
            }
        )
        state, verdict = await _after(session, outcome, endpoints[claimed.endpoint_id], now)
        counts[verdict] += 1
        changes.append(
            {
                "id": claimed.delivery_id,
                "attempt_count": claimed.attempt,
                "last_status": outcome.status_code,
                "lease_owner": None,
                "lease_until": None,
                **state,
            }
        )
    if attempts:
        await session.execute(insert(WebhookAttempt), attempts)
        await session.execute(update(WebhookDelivery), changes)
    return counts


async def _after(
    session: AsyncSession, outcome: Outcome, endpoint: WebhookEndpoint, now: datetime
) -> tuple[dict[str, object], str]:
    """The delivery's next state after this attempt, and the endpoint's failure record."""
    if outcome.delivered:
        if endpoint.failing_since is not None:
            endpoint.failing_since = None
        # Kept to the second: an endpoint taking hundreds a second is not rewritten (and its
        # ETag not changed) with every batch.
        last = endpoint.last_success_at
        if last is None or now - last >= LAST_SUCCESS_PRECISION:
            endpoint.last_success_at = now
        return {"state": "delivered", "delivered_at": now, "next_attempt_at": None}, "delivered"
    if outcome.interrupted:
        # Our stop, not the receiver's failure: due again at once, for the next worker.
        return {"state": "pending", "next_attempt_at": now}, "interrupted"
    endpoint.failing_since = endpoint.failing_since or now
    if outcome.status_code == 410:
        await _disable(session, endpoint, "gone", now)
    elif now - endpoint.failing_since >= FAILING_LIMIT:
        await _disable(session, endpoint, "failing", now)
    retry_at = next_attempt(outcome.claimed.attempt, now, outcome.retry_after)
    if endpoint.enabled and retry_at is not None:
        return {"state": "pending", "next_attempt_at": retry_at}, "retrying"
    return {"state": "failed", "next_attempt_at": None}, "failed"


async def _disable(
    session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime
) -> None:
    if not endpoint.enabled:
        return
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    log.info(
        "webhook endpoint disabled",
        extra={"endpoint_id": endpoint.id, "tenant_id": endpoint.tenant_id, "reason": reason},
    )
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.state == "pending")
        .values(state="cancelled", next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
