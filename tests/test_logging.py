from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.clock import FixedClock
from app.core.config import Settings
from app.core.db import Database
from app.core.logging import JsonFormatter
from app.worker import loop
from app.worker.jobs import Job
from tests.conftest import client_for
from tests.json_logs import json_logs
from tests.jwks_server import serve_jwks
from tests.served import serving
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    create_endpoint,
    deliver,
    deliveries_of,
    now_utc,
    receiver_settings,
    serve_receiver,
)
from tests.world import World, build_world


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as running:
        yield running


async def test_access_log_is_structured_and_carries_no_body(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    await client.post(
        "/v1/nope", json={"answer": "I felt worthless today"}, headers={"x-request-id": "r-1"}
    )
    records = [r for r in caplog.records if r.name == "homework.access"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["method"] == "POST"
    assert line["status"] == 404
    assert line["request_id"] == "r-1"
    assert isinstance(line["duration_ms"], float)
    assert "worthless" not in caplog.text


async def test_access_log_uses_the_route_template(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    await client.get("/healthz")
    (record,) = [r for r in caplog.records if r.name == "homework.access"]
    assert json.loads(JsonFormatter().format(record))["path"] == "/healthz"


async def test_access_log_records_the_full_template_of_versioned_routes(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    await client.get("/v1/clients/clt_secretish")
    (record,) = [r for r in caplog.records if r.name == "homework.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["path"] == "/v1/clients/{client_id}"
    # Our own lines only: the test's HTTP client logs its request when an earlier test in the
    # process has turned httpx's logger on.
    ours = [r for r in caplog.records if r.name.startswith("homework")]
    assert not [r for r in ours if "clt_secretish" in JsonFormatter().format(r)]


# Plain JSON, as an operator's log store receives it.


def test_a_served_processes_lines_are_plain_json_without_colours(tmp_path: Path) -> None:
    """`homework serve` as deployed: uvicorn's start-up and shutdown lines carry a
    `color_message` with ANSI escapes for its console; none reaches the JSON lines."""
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with serving(tmp_path) as (port, _env):
        answered = httpx.get(
            f"http://127.0.0.1:{port}/v1/clients?q=search-term",
            headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
            trust_env=False,
        )
        assert answered.status_code == 401
    output = (tmp_path / f"server-{port}.log").read_text()
    assert "\x1b" not in output and "\\u001b" not in output
    assert "color_message" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    assert any(m.startswith("Uvicorn running on") for m in messages), messages
    assert any(m.startswith("Started server process") for m in messages), messages
    access = [line for line in lines if line["logger"] == "homework.access"]
    # Tracing is off: the caller's trace id still ties this line to the caller's own logs, and
    # a request without one (the readiness polls) gets a new one.
    (ours,) = [line for line in access if line["path"] == "/v1/clients"]
    assert ours["trace_id"] == caller_trace
    polls = {line["trace_id"] for line in access if line["path"] == "/healthz"}
    assert polls and all(re.fullmatch("[0-9a-f]{32}", t) for t in polls)
    assert len(polls) == len([line for line in access if line["path"] == "/healthz"])
    assert "search-term" not in output


def test_escape_sequences_are_stripped_from_any_string() -> None:
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "INFO", "msg": "\x1b[32mgreen\x1b[0m", "note": "a\x1b[1mb"}
    )
    record.color_message = "\x1b[32mgreen\x1b[0m"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "green" and line["note"] == "ab"
    assert "color_message" not in line


async def test_no_http_client_writes_its_request_lines() -> None:
    """httpx logs every request with its full URL at INFO (a tenant's JWKS URL here; a
    receiver's URL may carry a token): silenced."""
    with serve_jwks() as host, json_logs("DEBUG") as logs:
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.get(host.url + "?token=s3cr3t")).status_code == 200
        logging.getLogger("homework.test").info("after the request")
    assert [line["message"] for line in logs.lines()] == ["after the request"]
    assert str(host.port) not in logs.text and "s3cr3t" not in logs.text


@pytest.fixture
async def subscribed(
    make_settings: Any, receiver: Receiver
) -> AsyncIterator[tuple[World, dict[str, Any]]]:
    """Tenant A subscribed at the loopback receiver, under a URL with tokens in its path and
    query, as receivers' URLs often are."""
    async with app_for(receiver_settings(make_settings, receiver)) as application:
        world = await build_world(application)
        async with client_for(application) as http:
            url = receiver.url("/hook/tok-PATHSECRET?key=QUERYSECRET")
            endpoint = await create_endpoint(http, world, url)
        yield world, endpoint


async def test_a_delivery_attempt_is_logged_by_ids_never_by_url(
    subscribed: tuple[World, dict[str, Any]], receiver: Receiver
) -> None:
    world, endpoint = subscribed
    receiver.answer((503, {}, b"down: RECEIVER-ANSWER"))  # then 200
    event_id = await add_event(world)
    with json_logs("DEBUG") as logs:
        await deliver(world, receiver, now_utc())
        await deliver(world, receiver, now_utc() + timedelta(minutes=1))
    assert len(receiver.requests) == 2
    attempts = [line for line in logs.lines() if line["message"].startswith("webhook attempt")]
    (delivery,) = await deliveries_of(world, event_id)
    failed, delivered = attempts
    assert failed["level"] == "info" and failed["outcome"] == "5xx"
    assert failed["status_code"] == 503 and failed["attempt"] == 1
    assert delivered["level"] == "debug" and delivered["outcome"] == "delivered"
    assert delivered["attempt"] == 2
    for line in attempts:
        assert line["delivery_id"] == delivery.id and line["endpoint_id"] == endpoint["id"]
        assert line["tenant_id"] == world.a.id and line["event_id"] == event_id
        assert isinstance(line["duration_ms"], int)
    for secret in ("PATHSECRET", "QUERYSECRET", "RECEIVER-ANSWER", "127.0.0.1", "/hook"):
        assert secret not in logs.text


async def test_an_idle_worker_writes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Many rounds of every job with nothing to do, and several report periods: not a line
    between "started" and "stopped"."""
    monkeypatch.setattr(loop, "REPORT_EVERY_SECONDS", 0.05)
    fast = settings.model_copy(update={"worker_interval_seconds": 0.02})
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG)
    worker = asyncio.create_task(loop.run_forever(fast, stop, clock=FixedClock(now_utc())))
    await asyncio.sleep(0.6)  # ~30 rounds of each job, ~12 report periods
    stop.set()
    await asyncio.wait_for(worker, timeout=10)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("homework")]
    assert ours == ["worker started", "worker stopped"]


async def test_a_worker_that_did_something_reports_it_once_per_period(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loop, "REPORT_EVERY_SECONDS", 0.2)
    handled = [3]

    async def once_busy(database: Database, now: datetime, batch_size: int) -> int:
        return handled.pop() if handled else 0

    fast = settings.model_copy(update={"worker_interval_seconds": 0.02})
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="homework.worker")
    worker = asyncio.create_task(
        loop.run_forever(
            fast, stop, jobs=[Job("busy_once", once_busy)], clock=FixedClock(now_utc())
        )
    )
    await asyncio.sleep(0.7)
    stop.set()
    await asyncio.wait_for(worker, timeout=10)
    reports = [r for r in caplog.records if r.getMessage() == "worker progress"]
    assert len(reports) == 1 and reports[0].counts == {"busy_once": 3}


async def test_an_endpoint_disabled_by_its_receiver_is_logged_by_id(
    subscribed: tuple[World, dict[str, Any]], receiver: Receiver
) -> None:
    world, endpoint = subscribed
    receiver.answer((410, {}, b"gone"))
    await add_event(world)
    with json_logs() as logs:
        await deliver(world, receiver, now_utc())
    (disabled,) = [line for line in logs.lines() if line["message"] == "webhook endpoint disabled"]
    assert disabled["endpoint_id"] == endpoint["id"] and disabled["tenant_id"] == world.a.id
    assert disabled["reason"] == "gone"
    (failed,) = [line for line in logs.lines() if line["message"] == "webhook attempt failed"]
    assert failed["outcome"] == "4xx" and failed["status_code"] == 410
    assert "PATHSECRET" not in logs.text and "127.0.0.1" not in logs.text
