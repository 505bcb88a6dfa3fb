"""Quotas and rate limits (OWASP API4): one caller's load stays that caller's.

Every authenticated request is counted twice, against its **subject** (the token's client,
clinician or backend) and against its **tenant**, each in its route's class: `reads` (GET),
`writes` (POST, PATCH, DELETE) or `heavy` (the adherence, session-summary and caseload
aggregates). `POST /oauth/token` is counted per source address and, once the client is known,
per OAuth client; failed authentications cost more and have a budget of their own per client
and address, spent before any secret is checked.

Counters are fixed windows kept in the `limits` library's storage: in this process's memory, or
in Redis when `HOMEWORK_RATE_LIMIT_STORAGE_URL` names one, so that every process shares one
budget. If Redis stops answering, each process counts alone until it answers again: a limiter
outage must not become an API outage.

Every counted response carries the IETF `RateLimit-Policy` and `RateLimit` headers
(draft-ietf-httpapi-ratelimit-headers); a refusal is `429` problem+json with `Retry-After`.
docs/RATE_LIMITS.md has the defaults and how to size them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.config import RATE_LIMIT_NAMES, Settings
from app.core.errors import TooManyRequests

log = logging.getLogger("homework.rate_limits")

STATE_KEY = "rate_limits"  # in the request's scope["state"]: the outcomes for the headers
# A failed client authentication costs this many of its address's attempts.
FAILURE_COST = 5
# How long a process counts alone after Redis failed before it tries Redis again.
REDIS_RETRY_SECONDS = 5.0


class RouteClass(StrEnum):
    reads = "reads"
    writes = "writes"
    heavy = "heavy"


HEAVY_RESOURCES = frozenset({"adherence"})


def route_class(resource: str, permission: str) -> RouteClass:
    """From the scope a route demands: aggregates are heavy, `c`/`u`/`d` write, `r`/`s` read."""
    if resource in HEAVY_RESOURCES:
        return RouteClass.heavy
    return RouteClass.writes if permission in "cud" else RouteClass.reads


@dataclass(frozen=True)
class Policy:
    name: str  # "subject-reads": its name in the headers
    item: RateLimitItem

    @property
    def window_seconds(self) -> int:
        return int(self.item.get_expiry())

    def header(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.window_seconds}'


@dataclass(frozen=True)
class Outcome:
    policy: Policy
    allowed: bool
    remaining: int
    reset_in: int  # whole seconds until one more request is allowed

    def header(self) -> str:
        return f'"{self.policy.name}";r={self.remaining};t={self.reset_in}'


def _policy(name: str, value: str) -> Policy:
    return Policy(name.replace("_", "-"), parse(value))


class RateLimiter:
    """The counters and the configured limits of one app.

    Each window is a fixed one, aligned to the clock (`w` seconds from a multiple of `w`): one
    atomic increment per policy and request (in Redis, one round trip), from which the count,
    what is left and when it resets all follow. A burst can straddle two windows and reach
    twice the quota in a short while; the defaults are sized with that in mind.
    """

    def __init__(self, settings: Settings) -> None:
        self._defaults = {
            name: _policy(name, getattr(settings, f"rate_limit_{name}"))
            for name in RATE_LIMIT_NAMES
        }
        self._by_tenant = {
            tenant: {**self._defaults, **{n: _policy(n, v) for n, v in overrides.items()}}
            for tenant, overrides in settings.rate_limit_tenants.items()
        }
        self._local: Storage = MemoryStorage()
        self._shared: Storage | None = None
        self._shared_down_until = 0.0
        if settings.rate_limit_storage_url:
            self._shared = RedisStorage(
                "async+" + settings.rate_limit_storage_url,
                implementation="redispy",
                key_prefix=settings.rate_limit_key_prefix,
                # A slow Redis must not slow every request: give up fast, count locally.
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
            )

    def policy(self, name: str, tenant_id: str | None = None) -> Policy:
        return self._by_tenant.get(tenant_id or "", self._defaults)[name]

    async def hit(self, policy: Policy, *keys: str, cost: int = 1) -> Outcome:
        """Count `cost` against the policy's current window for `keys`."""
        key, reset_in = self._window(policy, keys)
        count = await self._call("incr", key, policy.window_seconds, cost)
        return self._outcome(policy, count, reset_in, allowed=count <= policy.item.amount)

    async def spent(self, policy: Policy, *keys: str) -> Outcome | None:
        """The outcome that refuses the next request for `keys`, if its budget is spent."""
        key, reset_in = self._window(policy, keys)
        count = await self._call("get", key)
        if count < policy.item.amount:
            return None
        return self._outcome(policy, count, reset_in, allowed=False)

    @staticmethod
    def _window(policy: Policy, keys: tuple[str, ...]) -> tuple[str, int]:
        """The current window's key (the policy's name is part of it: two policies of the same
        size never share a count) and the whole seconds until it ends."""
        now, width = time.time(), policy.window_seconds
        start = int(now // width) * width
        return "/".join((policy.name, *keys, str(start))), max(1, math.ceil(start + width - now))

    @staticmethod
    def _outcome(policy: Policy, count: int, reset_in: int, *, allowed: bool) -> Outcome:
        return Outcome(policy, allowed, max(0, policy.item.amount - count), reset_in)

    async def _call(self, operation: str, *args: Any) -> int:
        shared = self._shared
        if shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                return int(await getattr(shared, operation)(*args))
            except Exception as exc:  # the shared store is away: count here, never fail the call
                self._redis_failed(exc)
        return int(await getattr(self._local, operation)(*args))

    def _redis_failed(self, exc: Exception) -> None:
        self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.warning(
            "rate limit storage unreachable; counting in this process for a while",
            extra={"error": type(exc).__name__, "retry_in_seconds": REDIS_RETRY_SECONDS},
        )


def record(scope: Scope, outcomes: list[Outcome]) -> None:
    """Keep the outcomes for the response's headers; refuse the request if one is spent."""
    scope.setdefault("state", {}).setdefault(STATE_KEY, []).extend(outcomes)
    refused = [o for o in outcomes if not o.allowed]
    if refused:
        for outcome in refused:
            metrics.series(metrics.RATE_LIMITED, outcome.policy.name).inc()
        wait = max(max(o.reset_in for o in refused), 1)
        names = ", ".join(o.policy.name for o in refused)
        raise TooManyRequests(
            f"Too many requests ({names}); retry in {wait} s.",
            headers={"Retry-After": str(wait), **headers_for(scope)},
        )


def headers_for(scope: Scope) -> dict[str, str]:
    outcomes: list[Outcome] = scope.get("state", {}).get(STATE_KEY) or []
    if not outcomes:
        return {}
    return {
        "RateLimit-Policy": ", ".join(o.policy.header() for o in outcomes),
        "RateLimit": ", ".join(o.header() for o in outcomes),
    }


class RateLimitHeadersMiddleware:
    """Adds the headers of whatever the request was counted against to its response, whether
    the route answered or raised (a 404 still spent part of the budget)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = headers_for(scope)
                if extra:
                    present = {name.lower() for name, _ in message.get("headers", [])}
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            *(
                                (name.lower().encode(), value.encode())
                                for name, value in extra.items()
                                if name.lower().encode() not in present
                            ),
                        ],
                    }
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def count_api_request(
    request: Request, tenant_id: str, subject: str, route: RouteClass
) -> None:
    """Against the subject's budget, then (if it had room) the tenant's."""
    limiter = _limiter_of(request)
    outcomes = [await limiter.hit(limiter.policy(f"subject_{route}", tenant_id), subject)]
    if outcomes[0].allowed:
        tenant_policy = limiter.policy(f"tenant_{route}", tenant_id)
        outcomes.append(await limiter.hit(tenant_policy, tenant_id))
    record(request.scope, outcomes)


async def count_token_request(request: Request) -> None:
    """Every `POST /oauth/token`, before anything is parsed: the source address's budget."""
    limiter = _limiter_of(request)
    record(request.scope, [await limiter.hit(limiter.policy("token_address"), _address(request))])


async def refuse_if_failing(request: Request, client_id: str) -> None:
    """Before the secret is checked: a client and address whose failures are spent wait, even
    with the right secret (guessing stops). Keyed by both, so that nobody elsewhere can lock a
    vendor out by sending its client id with wrong secrets."""
    limiter = _limiter_of(request)
    spent = await limiter.spent(limiter.policy("token_failures"), client_id, _address(request))
    if spent is not None:
        record(request.scope, [spent])


async def count_token_failure(request: Request, client_id: str) -> None:
    limiter, address = _limiter_of(request), _address(request)
    await limiter.hit(limiter.policy("token_failures"), client_id, address)
    # The attempt itself was counted once already: a failure costs FAILURE_COST in all.
    await limiter.hit(limiter.policy("token_address"), address, cost=FAILURE_COST - 1)


async def count_token_issued(request: Request, client_id: str, tenant_id: str) -> None:
    limiter = _limiter_of(request)
    record(request.scope, [await limiter.hit(limiter.policy("token_client", tenant_id), client_id)])
