"""The database out of reach is a 503 with Retry-After, never a 500, and leaves nothing
half-written: on a PostgreSQL server of the test's own that is restarted (fast and immediate)
under a stream of POSTs, and on a database that cannot be reached at all (both backends)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.core import migrations
from app.core.scopes import Context
from app.main import create_app
from tests.conftest import _asyncpg_dsn, _settings_for, client_for
from tests.own_postgres import OwnPostgres, free_port, postgres_binaries
from tests.world import Tenant, World, build_world

UNAVAILABLE = "urn:homework:problem:service-unavailable"
SENDERS = 6  # concurrent callers: more than the pool has connections
RECOVERED_AFTER = 20  # 201s, sent after the restart, that show the API is back


def _assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == UNAVAILABLE
    assert int(answer.headers["retry-after"]) > 0


@pytest.fixture(scope="module")
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
    server = OwnPostgres(binaries)
    try:
        server.start()
        await migrations.upgrade(_settings_for(server.url))
        yield server
    finally:
        server.stop()


@dataclass
class Answer:
    external_id: str
    sent_at: float
    response: httpx.Response


async def _create_client(http: httpx.AsyncClient, world: World, external_id: str) -> Answer:
    sent_at = time.monotonic()
    response = await http.post(
        "/v1/clients",
        json={"external_id": external_id, "time_zone": "Europe/London"},
        # The key is the external id: a retry after a 503 is the same request.
        headers={**world.headers("system_a"), "Idempotency-Key": external_id},
    )
    return Answer(external_id, sent_at, response)


async def _stream_through_restart(
    app: FastAPI, world: World, server: OwnPostgres, mode: str
) -> tuple[list[Answer], float]:
    answers: list[Answer] = []
    stop = asyncio.Event()

    async def send(sender: int) -> None:
        async with client_for(app) as http:
            for n in range(100_000):
                if stop.is_set():
                    return
                answer = await _create_client(http, world, f"{mode}-{sender}-{n}")
                answers.append(answer)
                if answer.response.status_code == 503:
                    await asyncio.sleep(0.05)  # a caller that backs off a little

    senders = [asyncio.create_task(send(n)) for n in range(SENDERS)]
    try:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.restart, mode)
        restarted = time.monotonic()
        deadline = restarted + 15
        while time.monotonic() < deadline:
            back = [a for a in answers if a.sent_at > restarted and a.response.status_code == 201]
            if len(back) >= RECOVERED_AFTER:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*senders)
    return answers, restarted


async def _retry_until_created(app: FastAPI, world: World, external_ids: list[str]) -> Counter:
    """What a well-behaved caller does after a 503: the same request, same key, until done."""
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(SENDERS)

    async def retry(external_id: str) -> None:
        async with gate, client_for(app) as http:
            deadline = time.monotonic() + 20
            while True:
                answer = (await _create_client(http, world, external_id)).response
                if answer.status_code == 201:
                    replayed = answer.headers.get("idempotent-replayed") == "true"
                    # Replayed: the first attempt had committed although its answer was a 503.
                    outcomes["replayed" if replayed else "created"] += 1
                    return
                # 409: the failed attempt's key is still leased (its release hit the outage).
                assert answer.status_code in (409, 503), answer.text
                outcomes[f"waited on {answer.status_code}"] += 1
                assert time.monotonic() < deadline, f"{external_id} never succeeded"
                await asyncio.sleep(0.25)

    await asyncio.gather(*(retry(external_id) for external_id in external_ids))
    return outcomes


async def _stored(server: OwnPostgres, tenant_id: str, mode: str) -> dict[str, int]:
    connection = await asyncpg.connect(_asyncpg_dsn(server.url))
    try:
        clients = await connection.fetchval(
            "SELECT count(*) FROM clients WHERE tenant_id = $1 AND external_id LIKE $2",
            tenant_id,
            f"{mode}-%",
        )
        # Half-written: a client without the audit row of its creation, or the reverse.
        unaudited = await connection.fetchval(
            """SELECT count(*) FROM clients c WHERE c.tenant_id = $1 AND c.external_id LIKE $2
               AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.resource_type = 'client'
                               AND a.action = 'create' AND a.resource_id = c.id)""",
            tenant_id,
            f"{mode}-%",
        )
        orphan_audits = await connection.fetchval(
            """SELECT count(*) FROM audit_events a WHERE a.tenant_id = $1
               AND a.resource_type = 'client' AND a.action = 'create'
               AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = a.resource_id)""",
            tenant_id,
        )
        keys_not_done = await connection.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE $1 AND state <> 'done'",
            f"{mode}-%",
        )
    finally:
        await connection.close()
    return {
        "clients": clients,
        "unaudited": unaudited,
        "orphan_audits": orphan_audits,
        "keys_not_done": keys_not_done,
    }


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_restart_under_load_answers_201_or_503_never_500(
    own_postgres: OwnPostgres, mode: str
) -> None:
    # A pool smaller than the callers, with a short wait: a full pool is a 503 too.
    settings = _settings_for(own_postgres.url, db_pool_size=4, db_pool_timeout_seconds=2)
    app = create_app(settings)
    try:
        world = await build_world(app)
        answers, restarted = await _stream_through_restart(app, world, own_postgres, mode)
        statuses = Counter(a.response.status_code for a in answers)
        after = Counter(a.response.status_code for a in answers if a.sent_at > restarted)
        print(f"restart -m {mode}: {dict(statuses)}; sent after the restart: {dict(after)}")

        assert set(statuses) <= {201, 503}, statuses
        assert statuses[503] > 0, "the restart was not felt: the test proves nothing"
        assert after[201] >= RECOVERED_AFTER, after
        refused = [a for a in answers if a.response.status_code == 503]
        for answer in refused:
            _assert_unavailable(answer.response)

        outcomes = await _retry_until_created(app, world, [a.external_id for a in refused])
        print(f"restart -m {mode}: the 503s retried: {dict(outcomes)}")
        created = {
            a.external_id: a.response.json()["id"] for a in answers if a.response.status_code == 201
        }
        stored = await _stored(own_postgres, world.a.id, mode)
        # Every request once, whole: the 201s and the retried 503s, nothing twice, nothing half.
        assert stored == {
            "clients": len(answers),
            "unaudited": 0,
            "orphan_audits": 0,
            "keys_not_done": 0,
        }, stored
        assert len(created) == statuses[201]
    finally:
        await app.state.database.dispose()


@pytest.mark.parametrize("keyed", [False, True], ids=["orm-path", "driver-path-claim"])
async def test_an_unreachable_database_answers_503(
    backend: str, tmp_path: Path, keyed: bool
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/unmounted/homework.db"
        if backend == "sqlite"
        else f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/homework"
    )
    app = create_app(_settings_for(url))
    nowhere = Tenant("tnt_unreachable", "cli_unreachable", "")
    token = World(app, nowhere, nowhere).token_for(nowhere, Context.system, nowhere.client_id)
    # With an Idempotency-Key the first statement is the key's claim, on the driver path;
    # without one it is the ORM's INSERT.
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": "k1"} if keyed else {})}
    try:
        async with client_for(app) as http:
            answer = await http.post(
                "/v1/clients", json={"external_id": "c1", "time_zone": "UTC"}, headers=headers
            )
    finally:
        await app.state.database.dispose()
    _assert_unavailable(answer)


async def test_a_connection_lost_at_commit_is_a_503_and_keeps_nothing(
    app: FastAPI, world: World, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core import idempotency

    original = idempotency.store_response
    killed: list[int] = []

    async def store_then_lose_the_connection(session, claim, response):  # type: ignore[no-untyped-def]
        await original(session, claim, response)
        if not killed:  # the first attempt only: its COMMIT is what fails
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            admin = await asyncpg.connect(_asyncpg_dsn(app.state.settings.database_url))
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()
            killed.append(pid)

    monkeypatch.setattr(idempotency, "store_response", store_then_lose_the_connection)
    async with client_for(app) as http:
        lost = (await _create_client(http, world, "commit-lost")).response
        _assert_unavailable(lost)
        listed = await http.get(
            "/v1/clients", params={"external_id": "commit-lost"}, headers=world.headers("system_a")
        )
        assert listed.json()["data"] == []  # rolled back whole: no client, no stored answer
        retried = (await _create_client(http, world, "commit-lost")).response
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
