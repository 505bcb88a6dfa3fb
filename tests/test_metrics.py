"""/metrics in one process: every family the API and the worker export, with the labels they
promise and values that move by exactly what the test did. Values are compared between two
scrapes, since the registry is the test process's and other tests add to it too.

The same families across several API and worker processes are in test_metrics_processes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core import metrics
from app.core.config import Settings
from app.core.db import CountedPool, report_pool_forever
from app.main import create_app
from app.worker import backlog
from app.worker.loop import run_once
from tests.conftest import client_for
from tests.homework_helpers import assign, freeze, new_client
from tests.metrics_scrape import Samples, changes, parse
from tests.served import free_port, serving
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    create_endpoint,
    receiver_settings,
)
from tests.world import World, build_world

CLIENT_ROUTE = "/v1/clients/{client_id}"
REQUESTS = "homework_http_request_duration_seconds_count"  # the histogram counts them


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


async def test_requests_are_counted_by_route_template_method_and_status_class(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id = world.a.clients["A1"]
    before = await scrape(client)
    for _ in range(3):
        found = await client.get(f"/v1/clients/{client_id}", headers=world.headers("system_a"))
        assert found.status_code == 200
    missing = await client.get("/v1/clients/clt_unknown", headers=world.headers("system_a"))
    assert missing.status_code == 404
    await client.request("BREW", f"/v1/clients/{client_id}")  # a method nobody serves
    moved = changes(before, await scrape(client))

    ok = {"route": CLIENT_ROUTE, "method": "GET", "status": "2xx"}
    assert moved.value(REQUESTS, **ok) == 3
    assert moved.value("homework_http_request_duration_seconds_sum", **ok) > 0
    assert moved.value("homework_http_request_duration_seconds_bucket", **ok, le="+Inf") == 3
    not_found = {"route": CLIENT_ROUTE, "method": "GET", "status": "4xx"}
    assert moved.value(REQUESTS, **not_found) == 1
    assert moved.value(REQUESTS, route=CLIENT_ROUTE, method="other", status="4xx") == 1
    # The raw path (with its id) is never a label; neither is anything but these three.
    assert moved.label_sets(REQUESTS) == {frozenset({"route", "method", "status"})}
    assert not any(client_id in value for _, labels in moved for _, value in labels)


async def test_token_verifications_are_counted_by_issuer_and_outcome(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await scrape(client)
    assert (await client.get("/v1/me/homework", headers=world.headers("client_a1"))).is_success
    refused = await client.get("/v1/clients", headers=world.headers("expired"))
    assert refused.status_code == 401
    forged = await client.get("/v1/clients", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401
    moved = changes(before, await scrape(client))
    name = "homework_token_verifications_total"
    assert moved.value(name, issuer="ours", outcome="valid") == 1
    assert moved.value(name, issuer="unverified", outcome="expired") == 1
    assert moved.value(name, issuer="unverified", outcome="invalid") == 1


async def test_rate_limit_rejections_are_counted_by_policy(make_settings: Any) -> None:
    app = create_app(make_settings(rate_limit_subject_reads="1/minute"))
    try:
        world = await build_world(app)
        async with client_for(app) as http:
            before = await scrape(http)
            statuses = [
                (await http.get("/v1/clients", headers=world.headers("system_a"))).status_code
                for _ in range(3)
            ]
            moved = changes(before, await scrape(http))
    finally:
        await app.state.database.dispose()
    assert statuses == [200, 429, 429]
    assert moved.value("homework_rate_limit_rejections_total", policy="subject-reads") == 2


async def test_the_pool_counts_callers_waiting_and_connections_in_use(settings: Settings) -> None:
    engine = create_async_engine(
        settings.database_url, poolclass=CountedPool, pool_size=1, max_overflow=0
    )
    stop = asyncio.Event()
    database: Any = SimpleNamespace(engine=engine)
    reporting = asyncio.create_task(report_pool_forever(database, stop))
    waiting = metrics.DB_POOL_WAITING._value
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            second = asyncio.create_task(_query(engine))
            await asyncio.sleep(1.5)  # the second caller waits; the pool is read meanwhile
            assert waiting.get() == 1 and not second.done()
            assert metrics.DB_POOL_IN_USE._value.get() == 1
        await second
        assert waiting.get() == 0
    finally:
        stop.set()
        await reporting
        await engine.dispose()


async def _query(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def test_metrics_can_be_turned_off(make_settings: Any) -> None:
    app = create_app(make_settings(metrics_enabled=False))
    try:
        async with client_for(app) as http:
            assert (await http.get("/metrics")).status_code == 404
    finally:
        await app.state.database.dispose()


async def test_metrics_on_a_port_of_their_own_leave_none_on_the_api_port(
    make_settings: Any,
) -> None:
    app = create_app(make_settings(metrics_port=9464))  # served by `homework serve`, not here
    try:
        async with client_for(app) as http:
            assert (await http.get("/metrics")).status_code == 404
    finally:
        await app.state.database.dispose()


# The worker's families, from one-off rounds on the frozen clock.


@pytest.fixture
async def app(make_settings: Any, receiver: Receiver) -> AsyncIterator[FastAPI]:
    async with app_for(receiver_settings(make_settings, receiver)) as application:
        yield application


async def test_worker_jobs_reminders_and_deliveries_are_measured(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    freeze(world, "2026-11-22T08:00:00Z")
    endpoint = await create_endpoint(client, world, receiver.url())
    receiver.secrets = [endpoint["secret"]]
    client_id = await new_client(client, world, "Europe/London")
    created = await assign(
        client,
        world,
        client_id,
        {"type": "once", "due_at": "2026-11-22T23:00"},
        reminders={"local_times": ["23:00"]},
    )
    assert created.status_code == 201, created.text
    database = world.app.state.database
    due = datetime.fromisoformat("2026-11-22T23:00:00+00:00")
    late = due + timedelta(seconds=30)

    before = await scrape(client)
    async with database.read_sessionmaker() as session:
        await backlog.measure(session, late)
    waiting = await scrape(client)
    assert waiting.value("homework_backlog_items", queue="reminders") == 1
    assert waiting.value("homework_backlog_oldest_age_seconds", queue="reminders") == 30
    assert waiting.value("homework_backlog_items", queue="fan_out") >= 1  # assignment.created

    receiver.now = late
    await run_once(database, late, 50)
    await run_once(database, late, 50)  # the reminder's own event, fanned out and sent
    moved = changes(before, await scrape(client))
    assert moved.value("homework_worker_batches_total", job="fire_reminders") >= 1
    assert moved.value("homework_worker_items_total", job="fire_reminders") == 1
    assert moved.value("homework_worker_batch_duration_seconds_count", job="open_due") >= 1
    assert moved.value("homework_reminder_lateness_seconds_count") == 1
    assert moved.value("homework_reminder_lateness_seconds_sum") == 30
    delivered = {"outcome": "delivered", "circuit": "closed"}
    assert moved.value("homework_webhook_attempts_total", **delivered) == len(receiver.requests)
    assert len(receiver.requests) >= 2  # assignment.created and reminder.due
    assert moved.value("homework_webhook_attempt_duration_seconds_count") >= 2
    # Tenant ids only when asked for.
    assert "homework_tenant_webhook_attempts_total" not in moved.names()

    async with database.read_sessionmaker() as session:
        await backlog.measure(session, late)
    drained = await scrape(client)
    for queue in ("reminders", "fan_out", "deliveries"):
        assert drained.value("homework_backlog_items", queue=queue) == 0
        assert drained.value("homework_backlog_oldest_age_seconds", queue=queue) == 0
    assert drained.value("homework_webhook_endpoints_failing") == 0


async def test_a_failing_endpoint_shows_in_the_gauges_and_attempts(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    freeze(world, "2026-11-22T08:00:00Z")
    receiver.default = (500, {}, b"down")
    endpoint = await create_endpoint(client, world, receiver.url())
    receiver.secrets = [endpoint["secret"]]
    await add_event(world)
    database = world.app.state.database
    started = datetime.fromisoformat("2026-11-22T08:00:00+00:00")
    before = await scrape(client)
    receiver.now = started
    await run_once(database, started, 50)
    an_hour_on = started + timedelta(hours=1)
    async with database.read_sessionmaker() as session:
        await backlog.measure(session, an_hour_on)
    after = await scrape(client)
    moved = changes(before, after)
    rejected = {"outcome": "rejected", "circuit": "closed"}
    assert moved.value("homework_webhook_attempts_total", **rejected) == len(receiver.requests)
    assert len(receiver.requests) == 1
    assert after.value("homework_webhook_endpoints_failing") == 1
    assert after.value("homework_webhook_endpoint_failing_longest_seconds") == 3600
    assert after.value("homework_backlog_items", queue="deliveries") >= 1  # its retry is due


def test_status_classes_and_unknown_methods_mint_no_series() -> None:
    assert metrics.status_class(204) == "2xx" and metrics.status_class(503) == "5xx"
    metrics.observe_request("/x", "PURGE", 200, 0.01)
    metrics.observe_request("/x", "PROPFIND", 200, 0.01)
    assert metrics.series(metrics.REQUEST_SECONDS, "/x", "other", "2xx")._sum.get() >= 0.02


async def test_tenant_labels_only_when_asked_for(make_settings: Any, receiver: Receiver) -> None:
    settings = receiver_settings(make_settings, receiver, metrics_tenant_labels=True)
    async with app_for(settings) as app:
        world = await build_world(app)
        async with client_for(app) as http:
            freeze(world, "2026-11-22T08:00:00Z")
            endpoint = await create_endpoint(http, world, receiver.url())
            receiver.secrets = [endpoint["secret"]]
            await add_event(world)
            at = datetime.fromisoformat("2026-11-22T08:00:00+00:00")
            receiver.now = at
            await run_once(app.state.database, at, 50)
            samples = await scrape(http)
    name = "homework_tenant_webhook_attempts_total"
    assert samples.value(name, tenant_id=world.a.id, outcome="delivered") >= 1
    assert samples.label_sets(name) == {frozenset({"tenant_id", "outcome"})}


def test_metrics_on_their_own_port_from_homework_serve(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, metrics_port=str(port)) as (api_port, _env):
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz", trust_env=False).is_success
        assert httpx.get(f"http://127.0.0.1:{api_port}/metrics", trust_env=False).status_code == 404
        samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text)
    health = {"route": "/healthz", "method": "GET", "status": "2xx"}
    assert samples.value(REQUESTS, **health) >= 2  # the start-up wait's, and ours
