"""The worker inside `homework serve` (HOMEWORK_EMBEDDED_WORKER): when it runs, that it carries
a distress flag to the vendor's backend within a second with no worker process of its own, and
that it stops with the app, leaving nothing running, nothing unrecorded, the database unlocked
and nothing logged as an error, even when the stop comes while an attempt is being recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.core import data_keys
from app.core.config import Environment, Settings
from app.core.db import POOL_REPORT
from app.core.keys import generate_pem
from app.main import create_app
from tests.conftest import client_for
from tests.homework_helpers import complete
from tests.webhook_receiver import (
    Receiver,
    add_event,
    create_endpoint,
    deliveries_of,
    serve_receiver,
)
from tests.worker.test_isolation import allowing, arrivals, homework_for_a1, until
from tests.world import build_world

SQLITE = "sqlite+aiosqlite:///./somewhere.db"
POSTGRES = "postgresql+asyncpg://u@db/homework"
FLAG = "completion.distress_flagged"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _production(**values: Any) -> Settings:
    keys = json.dumps([{"alg": "ES256", "pem": generate_pem()}])
    return _settings(
        env=Environment.production,
        signing_keys=keys,
        data_keys=json.dumps([data_keys.generate_entry()]),
        issuer="https://homework.vendor.example",
        **values,
    )


# (a) When it runs.


# Ids without "sqlite"/"postgresql" in them: conftest's summary counts those as database tests.
URL_IDS = {None: "default_url", SQLITE: "aiosqlite_url", POSTGRES: "asyncpg_url"}


@pytest.mark.parametrize(
    ("env", "database_url", "runs"),
    [
        (Environment.development, None, True),  # `make run`: the embedded SQLite database
        (Environment.development, SQLITE, True),
        (Environment.development, POSTGRES, False),
        (Environment.test, None, False),
        (Environment.test, SQLITE, False),
        (Environment.test, POSTGRES, False),
    ],
    ids=lambda value: URL_IDS.get(value, str(value)) if not isinstance(value, bool) else None,
)
def test_by_default_it_runs_only_on_sqlite_in_development(
    env: Environment, database_url: str | None, runs: bool
) -> None:
    url = {"database_url": database_url} if database_url else {}
    assert _settings(env=env, **url).runs_embedded_worker is runs


def test_by_default_it_does_not_run_in_production() -> None:
    # (SQLite is refused in production: tests/core/test_production_guards.py.)
    assert _production(database_url=POSTGRES).runs_embedded_worker is False


@pytest.mark.parametrize("database_url", [None, SQLITE, POSTGRES], ids=URL_IDS.get)
@pytest.mark.parametrize("env", [Environment.development, Environment.test])
@pytest.mark.parametrize("embedded", [True, False])
def test_when_set_it_follows_the_setting(
    env: Environment, database_url: str | None, embedded: bool
) -> None:
    url = {"database_url": database_url} if database_url else {}
    settings = _settings(env=env, embedded_worker=embedded, **url)
    assert settings.runs_embedded_worker is embedded


def test_when_set_in_production_it_follows_the_setting() -> None:
    assert _production(database_url=POSTGRES, embedded_worker=True).runs_embedded_worker is True
    assert _production(database_url=POSTGRES, embedded_worker=False).runs_embedded_worker is False


def test_it_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", POSTGRES)
    monkeypatch.setenv("HOMEWORK_EMBEDDED_WORKER", "true")
    assert _settings().runs_embedded_worker is True
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", SQLITE)
    monkeypatch.setenv("HOMEWORK_EMBEDDED_WORKER", "false")
    assert _settings().runs_embedded_worker is False


# (b) Running, inside the app's lifespan.


def _others(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started since `before` and still running (this test's own excepted, and the
    pool's metrics reporter, which every process runs)."""
    return {
        t
        for t in asyncio.all_tasks()
        if t not in before and not t.done() and t.get_name() != POOL_REPORT
    }


async def _a1_with_a_receiver(app: FastAPI, receiver: Receiver) -> tuple[Any, str]:
    world = await build_world(app)
    async with client_for(app) as http:
        endpoint = await create_endpoint(http, world, receiver.url())
        receiver.secrets = [endpoint["secret"]]
        occurrence: str = (await homework_for_a1(http, world))["occurrences"][0]["id"]
    return world, occurrence


@pytest.fixture
def sqlite_only(backend: str) -> None:
    # The embedded worker is for the embedded database; on PostgreSQL it is the same loop
    # (tests/worker/test_isolation.py runs it on both), woken by NOTIFY instead.
    if backend != "sqlite":
        pytest.skip("the embedded worker is for SQLite")


@pytest.fixture
async def lifespan_of() -> AsyncIterator[Any]:
    """Enter an app's lifespan as `homework serve` does; leave it (within 10 s) on demand or
    at the end of the test."""
    stack = AsyncExitStack()

    async def enter(app: FastAPI) -> None:
        await stack.enter_async_context(app.router.lifespan_context(app))

    async def leave() -> None:
        async with asyncio.timeout(10):
            await stack.aclose()

    enter.leave = leave  # type: ignore[attr-defined]
    try:
        yield enter
    finally:
        await leave()


@pytest.mark.usefixtures("sqlite_only")
async def test_in_the_api_process_a_distress_flag_reaches_the_receiver_within_a_second(
    make_settings: Any, caplog: pytest.LogCaptureFixture, lifespan_of: Any
) -> None:
    caplog.set_level(logging.INFO)
    with serve_receiver() as receiver:
        # Polling every 5 s: only the in-process wake-ups on commit can make it in time.
        settings = allowing(
            make_settings, receiver, embedded_worker=True, worker_interval_seconds=5.0
        )
        app = create_app(settings)
        try:
            before = asyncio.all_tasks()
            await lifespan_of(app)
            assert _others(before), "no worker is running in the app"
            world, occurrence = await _a1_with_a_receiver(app, receiver)
            async with client_for(app) as http:
                flagged_at = time.time()
                response = await complete(
                    http, world, occurrence, status="not_done", barriers=["felt_overwhelmed"]
                )
                assert response.status_code == 201, response.text
            await until(lambda: arrivals(receiver, FLAG), 5)
            assert arrivals(receiver, FLAG)[0] - flagged_at < 1.0
            assert all(r.verified_with for r in receiver.requests)

            stopping = time.monotonic()
            await lifespan_of.leave()
            assert time.monotonic() - stopping < 2.0
            assert _others(before) == set()  # no task of the worker left behind
        finally:
            await app.state.database.dispose()
    messages = [r.getMessage() for r in caplog.records if r.name == "homework.worker"]
    assert "embedded worker running in the API process" in messages
    assert messages[-1] == "worker stopped"
    problems = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []


@pytest.mark.usefixtures("sqlite_only")
async def test_not_set_in_a_test_environment_no_worker_runs_in_the_api_process(
    make_settings: Any, caplog: pytest.LogCaptureFixture, lifespan_of: Any
) -> None:
    caplog.set_level(logging.INFO)
    with serve_receiver() as receiver:
        settings = allowing(make_settings, receiver, worker_interval_seconds=0.1)
        assert settings.env is Environment.test and settings.embedded_worker is None
        app = create_app(settings)
        try:
            before = asyncio.all_tasks()
            await lifespan_of(app)
            assert _others(before) == set()
            world, occurrence = await _a1_with_a_receiver(app, receiver)
            async with client_for(app) as http:
                response = await complete(
                    http, world, occurrence, status="not_done", barriers=["felt_overwhelmed"]
                )
                assert response.status_code == 201, response.text
            await asyncio.sleep(0.5)  # five polls of a worker, had one been running
            assert receiver.requests == []
            await lifespan_of.leave()
        finally:
            await app.state.database.dispose()
    assert [r for r in caplog.records if r.name == "homework.worker"] == []


@contextmanager
def on_next_transaction(
    engine: Any, armed: threading.Event, signal: asyncio.Event
) -> Iterator[None]:
    """Set `signal` as the first transaction to begin once `armed` is set sends its first
    statement (observers on the engine: they change nothing the worker does)."""
    chosen: list[Any] = []

    def began(connection: Any) -> None:
        if armed.is_set() and not chosen:
            chosen.append(connection)

    def executes(connection: Any, *_: Any) -> None:
        if chosen and connection is chosen[0]:
            signal.set()

    sync_engine = engine.sync_engine
    event.listen(sync_engine, "begin", began)
    event.listen(sync_engine, "before_cursor_execute", executes)
    try:
        yield
    finally:
        event.remove(sync_engine, "begin", began)
        event.remove(sync_engine, "before_cursor_execute", executes)


# A regression test for a bug at HEAD (app/worker/dispatcher.py, Dispatcher.run): on stop the
# recorder task (`_record_continuously`) and the lease heartbeat were cancelled, even in the
# middle of their transaction. On SQLite the cancelled transaction could be left neither
# committed nor rolled back, its connection keeping the write lock (BEGIN IMMEDIATE): the final
# `_record_finished()` then waited out busy_timeout (5 s) and failed ("webhook record failed"),
# the outcomes it held were never recorded (those deliveries stayed leased, to be sent again
# once the lease ran out although the receiver had them), the stop took 5 s longer, and the
# database stayed locked after the app was gone. Whether a cancellation leaves the lock behind
# depends on where in the driver's round trip it lands, so the stop is repeated: at HEAD more
# than half of these stops went wrong, and 10 runs of this test out of 10 failed.
STOPS = 6


@pytest.mark.usefixtures("sqlite_only")
async def test_stopping_while_an_attempt_is_being_recorded_loses_nothing(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with serve_receiver() as receiver:
        settings = allowing(make_settings, receiver, embedded_worker=True)
        path = str(make_url(settings.database_url).database)
        for stop in range(STOPS):
            app = create_app(settings)
            # The first transaction to begin after the receiver has answered is the worker's
            # recording of that attempt: the stop comes as it sends its first statement.
            # (Watched from before the worker starts: a listener added while the engine is in
            # use can break the iteration of another's.)
            answered, recording = threading.Event(), asyncio.Event()
            receiver.while_answering = None
            try:
                with on_next_transaction(app.state.database.engine, answered, recording):
                    before = asyncio.all_tasks()
                    async with AsyncExitStack() as lifespan:
                        await lifespan.enter_async_context(app.router.lifespan_context(app))
                        world = await build_world(app)
                        async with client_for(app) as http:
                            endpoint = await create_endpoint(http, world, receiver.url())
                        receiver.secrets = [endpoint["secret"]]
                        receiver.while_answering = answered.set
                        event_id = await add_event(world)
                        await asyncio.wait_for(recording.wait(), 5)
                        # The SIGTERM (or the end of `homework serve`) comes now.
                        stopping = time.monotonic()
                    stopped_in = time.monotonic() - stopping
                assert _others(before) == set(), stop
                # Nothing left holding the database: a writer gets in at once.
                writer = sqlite3.connect(path, timeout=0.5, isolation_level=None)
                try:
                    writer.execute("BEGIN IMMEDIATE")
                    writer.execute("ROLLBACK")
                finally:
                    writer.close()
                (delivery,) = await deliveries_of(world, event_id)
            finally:
                await app.state.database.dispose()
            assert receiver.ids().count(event_id) == 1, stop
            # The attempt is in the delivery log: delivered, its lease released, not to be
            # sent again.
            assert (delivery.state, delivery.lease_owner) == ("delivered", None), stop
            assert stopped_in < 2.0, (stop, stopped_in)
            problems = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= 30]
            assert problems == [], stop
