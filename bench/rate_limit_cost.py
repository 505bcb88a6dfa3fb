"""What the rate limiter costs a request of scenario (a), `GET /v1/me/homework`.

The limiter's whole share of such a request is `count_api_request`: the client's `reads`
window and its tenant's, each hit and read back. It is timed here on its own, in-process, over
as many distinct clients as the load's seed has (each request of (a) is a different client's),
with the in-memory counters `homework serve` uses by default and, when Redis runs here, with
the shared ones. The figure is set beside the service's own CPU time per request of (a) from the
latest load run (bench/results/latest.json): the goal is under 3 %.

    .venv/bin/python -m bench.rate_limit_cost        # also the last step of `make bench`
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from app.core.config import Environment, Settings
from app.core.rate_limits import RateLimiter, RouteClass, count_api_request

RESULTS = Path(__file__).resolve().parent / "results"
LATEST = RESULTS / "latest.json"
CLIENTS = 10_000  # as many as bench.seed_load's
REQUESTS = 50_000
GOAL = 0.03
REDIS_URL = "redis://127.0.0.1:6379/0"
# What is timed is the counting, not a refusal.
NEVER_REFUSED = {
    "rate_limit_subject_reads": "1000000/minute",
    "rate_limit_tenant_reads": "100000000/minute",
}


async def per_request_ms(settings: Settings, requests: int) -> float:
    """Mean wall time of one request's counting (nothing else runs on the loop meanwhile, so
    this is its CPU time, plus Redis's round trips when it is shared)."""
    app = SimpleNamespace(state=SimpleNamespace(rate_limiter=RateLimiter(settings)))
    subjects = [f"client:clt_{n:05d}" for n in range(CLIENTS)]
    scope: dict[str, Any] = {"type": "http", "app": app, "state": {}}
    request = Request(scope)
    for subject in subjects[:1000]:  # warm up: the windows exist, as under a steady load
        await count_api_request(request, "ten_bench", subject, RouteClass.reads)
    started = time.perf_counter()
    for n in range(requests):
        scope["state"] = {}
        await count_api_request(request, "ten_bench", subjects[n % CLIENTS], RouteClass.reads)
    return (time.perf_counter() - started) * 1000 / requests


def _settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, env=Environment.test, **NEVER_REFUSED, **overrides)  # type: ignore[arg-type]


def _redis_is_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def ours_ms_per_request(scenario: str) -> float | None:
    """The service's CPU time per request of `scenario` in the latest load run, if any."""
    if not LATEST.exists():
        return None
    latest = json.loads(LATEST.read_text())
    return float(latest["scenarios"][scenario]["ours"]["server_cpu_ms_per_request"])


async def main() -> None:
    figures: dict[str, Any] = {"requests": REQUESTS, "clients": CLIENTS, "goal_share": GOAL}
    figures["memory_ms"] = await per_request_ms(_settings(), REQUESTS)
    if _redis_is_up():
        prefix = f"bench-{uuid.uuid4().hex}"
        shared = _settings(rate_limit_storage_url=REDIS_URL, rate_limit_key_prefix=prefix)
        figures["redis_ms"] = await per_request_ms(shared, REQUESTS // 10)
    ours = ours_ms_per_request("a")
    figures["ours_server_cpu_ms_per_request"] = ours
    line = f"rate limiter, scenario (a): {figures['memory_ms'] * 1000:.1f} µs a request in memory"
    if ours:
        figures["memory_share"] = figures["memory_ms"] / ours
        line += f" = {figures['memory_share']:.1%} of ours ({ours:.2f} ms; goal under {GOAL:.0%})"
    if "redis_ms" in figures:
        line += f"; {figures['redis_ms'] * 1000:.0f} µs with Redis (round trips included)"
    print(line)
    (RESULTS / "rate_limit_cost.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
