"""What the revocation check costs a request of scenario (b), `GET /v1/assignments/{id}`.

Its whole share of such a request is what `authenticate` adds: `ensure_fresh` (a clock read
while the copy is fresh) and `refusal` (three set lookups), timed here on their own,
in-process, against a list holding as many revocations as a busy day could keep in force
(10,000), with tokens that are not in it (what nearly every request is). The reload itself,
one query every 2 s per process, is left out: it is not on a request's path but for the one
request that trips it, and is timed apart (`reload_ms`). The figure is set beside the
service's own CPU time per request of (b) from the latest load run
(bench/results/latest.json): the goal is under 5 %.

    .venv/bin/python -m bench.revocation_cost        # also the last step of `make bench`
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.core import migrations
from app.core.config import Environment, Settings
from app.core.db import Database
from app.core.revocations import RevocationList, subject_key
from app.models import Tenant, TokenRevocation
from app.models.base import utcnow
from bench.rate_limit_cost import ours_ms_per_request

RESULTS = Path(__file__).resolve().parent / "results"
REVOKED = 10_000
REQUESTS = 200_000
GOAL = 0.05


async def _revocations_in(database: Database) -> None:
    now = utcnow()
    async with database.sessionmaker() as session, session.begin():
        tenant = Tenant(name="bench")
        session.add(tenant)
        await session.flush()
        kinds = ("token", "oauth_client", "subject")
        session.add_all(
            TokenRevocation(
                tenant_id=tenant.id,
                kind=kinds[n % 3],
                value=f"clt_{n:026d}" if n % 3 == 2 else f"tok_{n:026d}",
                revoked_at=now,
                forget_after=now + timedelta(hours=1),
            )
            for n in range(REVOKED)
        )


async def per_request_us(revocations: RevocationList) -> float:
    tokens = [
        (f"tok_live{n:022d}", "oac_bench", subject_key("client", f"clt_live{n:018d}"))
        for n in range(1000)
    ]
    started = time.perf_counter()
    for n in range(REQUESTS):
        token_id, client_id, subject = tokens[n % 1000]
        await revocations.ensure_fresh()
        if revocations.refusal(token_id, client_id, subject) is not None:
            raise AssertionError("a live token was refused")
    return (time.perf_counter() - started) * 1e6 / REQUESTS


async def main(tmp: Path) -> None:
    settings = Settings(
        _env_file=None, env=Environment.test, database_url=f"sqlite+aiosqlite:///{tmp}/bench.db"
    )
    await migrations.upgrade(settings)
    database = Database(settings)
    try:
        await _revocations_in(database)
        # Fresh for the whole timing: what is measured is the per-request path.
        revocations = RevocationList(database, refresh_seconds=3600)
        started = time.perf_counter()
        await revocations.ensure_fresh()
        reload_ms = (time.perf_counter() - started) * 1000
        figures: dict[str, Any] = {
            "revocations_in_force": REVOKED,
            "requests": REQUESTS,
            "goal_share": GOAL,
            "check_us": await per_request_us(revocations),
            "reload_ms": reload_ms,
        }
    finally:
        await database.dispose()
    ours = ours_ms_per_request("b")
    figures["ours_server_cpu_ms_per_request"] = ours
    line = f"revocation check, scenario (b): {figures['check_us']:.2f} µs a request"
    if ours:
        figures["share"] = figures["check_us"] / 1000 / ours
        line += f" = {figures['share']:.2%} of ours ({ours:.2f} ms; goal under {GOAL:.0%})"
    line += f"; reloading {REVOKED} revocations: {reload_ms:.1f} ms every 2 s per process"
    print(line)
    (RESULTS / "revocation_cost.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(Path(directory)))
