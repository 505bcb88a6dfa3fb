"""Quotas and rate limits (issue 14): one caller's load stays that caller's.

Each test builds the app with small limits of its own (the rest of the suite raises them, see
tests/conftest.py), and counts through the real limiter: in memory, and in Redis shared by two
server processes when Redis runs here.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.core.config import Environment, Settings
from app.core.scopes import Context
from app.main import create_app
from tests.served import free_port, homework, running, service_env, uvicorn_command
from tests.world import World, build_world

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE_LIMITED = "urn:homework:problem:rate-limited"


@asynccontextmanager
async def limited(
    make_settings: Any, address: str = "127.0.0.1", **limits: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, World]]:
    """The app with these limits (`subject_reads="3/minute"`, …), its world, and an HTTP
    client calling from `address`."""
    app = create_app(make_settings(**{f"rate_limit_{name}": v for name, v in limits.items()}))
    try:
        world = await build_world(app)
        async with from_address(app, address) as http:
            yield http, world
    finally:
        await app.state.database.dispose()


def from_address(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def assert_refused(response: httpx.Response, policy: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == RATE_LIMITED and policy in response.json()["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert f'"{policy}";r=0;' in response.headers["ratelimit"]


def window(response: httpx.Response) -> dict[str, tuple[str, str]]:
    """Each policy in the headers: its quota and window, and what is left of it."""
    policies = dict(_items(response.headers["ratelimit-policy"]))
    left = dict(_items(response.headers["ratelimit"]))
    return {name: (policies[name], left[name]) for name in policies}


def _items(header: str) -> Iterator[tuple[str, str]]:
    for item in header.split(", "):
        name, _, params = item.partition(";")
        yield name.strip('"'), params


async def test_a_subject_is_held_to_its_reads_and_others_are_not(make_settings: Any) -> None:
    async with limited(make_settings, subject_reads="3/minute") as (http, world):
        for left in (2, 1, 0):
            ok = await http.get("/v1/me/homework", headers=world.headers("client_a1"))
            assert ok.status_code == 200, ok.text
            quota, remaining = window(ok)["subject-reads"]
            assert quota == "q=3;w=60" and remaining.startswith(f"r={left};t=")
            assert "tenant-reads" in window(ok)
        assert_refused(
            await http.get("/v1/me/homework", headers=world.headers("client_a1")), "subject-reads"
        )
        # Another client of the same tenant, and this client's writes, have budgets of their own.
        other = await http.get("/v1/me/homework", headers=world.headers("client_a2"))
        assert other.status_code == 200
        write = await http.post(
            "/v1/completions",
            json={"occurrence_id": "occ_none", "status": "done", "answers": {}},
            headers=world.headers("client_a1"),
        )
        assert write.status_code == 404 and "subject-writes" in window(write)


async def test_a_tenant_is_held_to_its_total_and_other_tenants_are_not(
    make_settings: Any,
) -> None:
    async with limited(make_settings, tenant_reads="4/minute") as (http, world):
        statuses = [
            (await http.get("/v1/assignments", headers=world.headers(role))).status_code
            for role in ("system_a", "clinician_a1", "client_a1", "clinician_a2")
        ]
        assert statuses == [200, 200, 200, 200]
        assert_refused(
            await http.get("/v1/me/homework", headers=world.headers("client_a2")), "tenant-reads"
        )
        elsewhere = await http.get("/v1/clients", headers=world.headers("system_b"))
        assert elsewhere.status_code == 200


async def test_aggregates_are_heavy_and_counted_apart(make_settings: Any) -> None:
    async with limited(make_settings, subject_heavy="1/minute") as (http, world):
        adherence = f"/v1/clients/{world.a.clients['A1']}/adherence"
        first = await http.get(adherence, headers=world.headers("clinician_a1"))
        assert first.status_code == 200 and "subject-heavy" in window(first)
        assert_refused(
            await http.get(adherence, headers=world.headers("clinician_a1")), "subject-heavy"
        )
        read = await http.get("/v1/clients", headers=world.headers("clinician_a1"))
        assert read.status_code == 200


async def test_limits_are_configured_per_tenant(make_settings: Any) -> None:
    async with limited(make_settings) as (_, world):
        # The same tenants, served by an app that tightens tenant A's reads.
        app = create_app(
            make_settings(rate_limit_tenants={world.a.id: {"subject_reads": "1/minute"}})
        )
        try:
            same = dataclasses.replace(world, app=app, tokens={})
            a1 = same.token_for(same.a, Context.client, same.a.clients["A1"])
            b1 = same.token_for(same.b, Context.client, same.b.clients["B1"])
            async with from_address(app, "127.0.0.1") as http:
                of_a, of_b = {"Authorization": f"Bearer {a1}"}, {"Authorization": f"Bearer {b1}"}
                assert (await http.get("/v1/me/homework", headers=of_a)).status_code == 200
                assert_refused(await http.get("/v1/me/homework", headers=of_a), "subject-reads")
                for _ in range(3):
                    assert (await http.get("/v1/me/homework", headers=of_b)).status_code == 200
        finally:
            await app.state.database.dispose()


async def _token(
    http: httpx.AsyncClient, world: World, secret: str | None = None
) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(world.a.client_id, secret or world.a.client_secret),
    )


async def test_wrong_secrets_stop_guessing_from_that_address_only(make_settings: Any) -> None:
    async with limited(make_settings, token_failures="3/minute") as (http, world):
        for _ in range(3):
            assert (await _token(http, world, "wrong")).status_code == 401
        # Spent: even the right secret waits, from this address.
        assert_refused(await _token(http, world), "token-failures")
        # Somebody else sending this client id with wrong secrets cannot lock the vendor out.
        async with from_address(world.app, "10.1.2.3") as vendor:
            assert (await _token(vendor, world)).status_code == 200


async def test_a_failure_costs_an_address_five_attempts(make_settings: Any) -> None:
    async with limited(make_settings, token_address="7/minute") as (http, world):
        assert (await _token(http, world)).status_code == 200  # 1
        assert (await _token(http, world, "wrong")).status_code == 401  # 1 + 5
        assert (await _token(http, world)).status_code == 200  # 7
        assert_refused(await _token(http, world), "token-address")


async def test_tokens_issued_to_one_client_are_limited(make_settings: Any) -> None:
    async with limited(make_settings, token_client="2/minute") as (http, world):
        assert [(await _token(http, world)).status_code for _ in range(2)] == [200, 200]
        refused = await _token(http, world)
        assert_refused(refused, "token-client")
        assert "access_token" not in refused.text


async def test_a_refusal_keeps_the_other_headers(make_settings: Any) -> None:
    async with limited(make_settings, subject_reads="1/minute") as (http, world):
        await http.get("/v1/me/homework", headers=world.headers("client_a1"))
        refused = await http.get("/v1/me/homework", headers=world.headers("client_a1"))
        assert refused.headers["x-request-id"]
        assert refused.headers["ratelimit-policy"].count("subject-reads") == 1


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"rate_limit_subject_reads": "lots"}, "rate_limit_subject_reads"),
        ({"rate_limit_tenants": {"ten_x": {"subject_lunch": "1/minute"}}}, "subject_lunch"),
        ({"rate_limit_tenants": {"ten_x": {"tenant_reads": "1 per fortnight"}}}, "ten_x"),
    ],
)
def test_a_bad_limit_is_refused_at_start_naming_it(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(_env_file=None, env=Environment.test, **overrides)  # type: ignore[call-arg]


async def test_an_unreachable_redis_falls_back_to_counting_here(make_settings: Any) -> None:
    async with limited(
        # An hour's window: three requests never straddle two (a minute's could, now and then).
        make_settings,
        storage_url="redis://127.0.0.1:1/0",
        subject_reads="2/hour",
    ) as (http, world):
        statuses = [
            (await http.get("/v1/me/homework", headers=world.headers("client_a1"))).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]


def _redis_is_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[int]]:
    """Two server processes on one SQLite file, counting in one Redis under a prefix of their
    own."""
    if not _redis_is_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    env = service_env(
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/shared.db",
        rate_limit_storage_url=REDIS_URL,
        rate_limit_key_prefix=f"test-{uuid.uuid4().hex}",
        rate_limit_token_address="6/minute",
    )
    homework("migrate", "upgrade", cwd=tmp_path, env=env)
    ports = [free_port(), free_port()]
    with (
        running(uvicorn_command(ports[0]), port=ports[0], cwd=tmp_path, env=env),
        running(uvicorn_command(ports[1]), port=ports[1], cwd=tmp_path, env=env),
    ):
        yield ports


def test_two_processes_share_one_budget_in_redis(two_servers: list[int]) -> None:
    statuses = []
    started = time.monotonic()
    for n in range(8):  # alternately: 4 to each
        port = two_servers[n % 2]
        response = httpx.post(
            f"http://127.0.0.1:{port}/oauth/token", data={"grant_type": "password"}, trust_env=False
        )
        statuses.append(response.status_code)
    assert time.monotonic() - started < 30  # all inside one window
    # Six attempts from this address in all, not six per process.
    assert statuses == [400] * 6 + [429] * 2
