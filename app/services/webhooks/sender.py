"""One webhook attempt: signed at the moment it starts, POSTed with a deadline, never raising.

The `webhook-timestamp` is the clock read as the attempt starts, so it is never older than the
attempt (receivers refuse timestamps more than 5 minutes off). `deadline` bounds the whole POST,
answer included, so a receiver dripping its answer byte by byte cannot hold the attempt.

Each attempt carries a `traceparent` that continues the trace of the request (or worker batch)
that recorded the event, with a span id of the attempt's own (its span, when tracing is on).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import aiohttp

from app.core import trace_context
from app.core.outbound import GuardedPoster, UnsafeUrl
from app.services.webhooks import signing
from app.services.webhooks.dispatch import Claimed, Outcome, retry_after_of

RESPONSE_BODY_LIMIT = 2048


async def attempt(
    http: GuardedPoster, claimed: Claimed, now: Callable[[], datetime], deadline: float
) -> Outcome:
    with trace_context.delivery(
        claimed.traceparent,
        delivery_id=claimed.delivery_id,
        endpoint_id=claimed.endpoint_id,
        tenant_id=claimed.tenant_id,
        event_id=claimed.event_id,
        attempt=claimed.attempt,
    ) as trace:
        outcome = await _attempt(http, claimed, now, deadline, trace.traceparent)
        trace.ended(outcome.status_code, outcome.delivered)
    return outcome


async def _attempt(
    http: GuardedPoster,
    claimed: Claimed,
    now: Callable[[], datetime],
    deadline: float,
    traceparent: str,
) -> Outcome:
    attempted_at = now()
    headers = signing.headers(
        claimed.secrets, claimed.event_id, int(attempted_at.timestamp()), claimed.body
    )
    # Not signed (Standard Webhooks signs the id, timestamp and body): correlation, not proof.
    headers[trace_context.TRACEPARENT] = traceparent
    started = time.perf_counter()
    status = retry_after = error = text = None
    try:
        async with (
            asyncio.timeout(deadline),
            http.post(claimed.url, body=claimed.body, headers=headers) as response,
        ):
            status = response.status
            retry_after = retry_after_of(response.headers.get("retry-after"), attempted_at)
            # Only what we keep is read: a receiver cannot make us hold a huge answer.
            text = (await _prefix(response, RESPONSE_BODY_LIMIT)).decode("utf-8", "replace")
    except UnsafeUrl as exc:
        error = f"refused: {exc}"
    except TimeoutError:
        error = "timeout"
    except aiohttp.ClientError as exc:
        error = type(exc).__name__
    except Exception as exc:
        # Anything else odd about one receiver is its attempt's failure: raised, it would
        # sink the batch unrecorded, to be sent again after every lease.
        error = type(exc).__name__
    latency = int((time.perf_counter() - started) * 1000)
    return Outcome(claimed, attempted_at, status, latency, text, retry_after, error)


async def _prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(limit):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
