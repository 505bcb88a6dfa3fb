"""An API process killed mid-request leaves its Idempotency-Key in flight; another process
answers the retry 409 with Retry-After while the dead claim's lease runs, then processes it,
within seconds of the crash. Two real `uvicorn` processes share the suite's database; one is
SIGKILLed while its request hangs after the claim."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.core.config import Settings
from app.core.db import Database
from app.core.idempotency import LEASE
from app.core.keys import generate_pem
from app.main import create_app
from app.models import IdempotencyKey
from tests.own_postgres import free_port
from tests.slow_api import SLOW_PATH
from tests.world import build_world

REPO = Path(__file__).resolve().parent.parent
RECLAIM_WITHIN = 10.0  # seconds after the crash: the bound
SIGNING_KEYS = json.dumps([{"kid": "crash-test", "alg": "ES256", "pem": generate_pem()}])


class Api:
    def __init__(self, settings: Settings, *, hang: bool) -> None:
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOMEWORK_ENV": "test",
            "HOMEWORK_DATABASE_URL": settings.database_url,
            "HOMEWORK_SIGNING_KEYS": SIGNING_KEYS,
            "HOMEWORK_TEST_HANG": "1" if hang else "0",
        }
        options = ["--factory", "--log-level", "warning", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                *options,
                "--port",
                str(self.port),
                "tests.slow_api:create_slow_app",
            ],
            cwd=REPO,
            env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the API process exited on start"
            try:
                if (await http.get(self.url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("the API process did not start within 30 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
async def apis(make_settings: Callable[..., Settings]) -> AsyncIterator[list[Api]]:
    started: list[Api] = []
    yield started
    for api in started:
        api.stop()


async def _in_flight(database: Database, key: str) -> bool:
    async with database.read_sessionmaker() as session:
        state = await session.scalar(select(IdempotencyKey.state).where(IdempotencyKey.key == key))
    return state == "in_flight"


async def test_a_crashed_claim_is_taken_over_within_seconds(
    make_settings: Callable[..., Settings], apis: list[Api]
) -> None:
    settings = make_settings(signing_keys=SIGNING_KEYS)
    app = create_app(settings)
    world = await build_world(app)
    database: Database = app.state.database
    key = "crash-key-1"
    headers = {**world.headers("system_a"), "Idempotency-Key": key}
    dying, survivor = Api(settings, hang=True), Api(settings, hang=False)
    apis.extend([dying, survivor])
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            await dying.ready(http)
            await survivor.ready(http)
            hanging = asyncio.create_task(http.post(dying.url + SLOW_PATH, headers=headers))
            deadline = time.monotonic() + 10
            while not await _in_flight(database, key):
                assert time.monotonic() < deadline, "the key was never claimed"
                await asyncio.sleep(0.05)

            # Past its first lease, the live claimant's heartbeat still holds the key.
            await asyncio.sleep(LEASE.total_seconds() + 1)
            held = await http.post(survivor.url + SLOW_PATH, headers=headers)
            assert held.status_code == 409, held.text
            assert 1 <= int(held.headers["retry-after"]) <= LEASE.total_seconds()

            dying.stop()  # SIGKILL: no release, no rollback, no goodbye
            crashed = time.monotonic()
            with pytest.raises(httpx.TransportError):
                await hanging

            first = await http.post(survivor.url + SLOW_PATH, headers=headers)
            assert first.status_code == 409, first.text
            assert first.headers["content-type"] == "application/problem+json"
            assert 1 <= int(first.headers["retry-after"]) <= LEASE.total_seconds()
            retried = first
            while retried.status_code == 409 and time.monotonic() - crashed < RECLAIM_WITHIN:
                await asyncio.sleep(0.2)
                retried = await http.post(survivor.url + SLOW_PATH, headers=headers)
            reclaimed_after = time.monotonic() - crashed
            print(f"reclaimed {reclaimed_after:.2f} s after the crash")

            assert retried.status_code == 201, (retried.status_code, reclaimed_after)
            assert retried.json() == {"served_by": survivor.process.pid}
            assert "idempotent-replayed" not in retried.headers
            replayed = await http.post(survivor.url + SLOW_PATH, headers=headers)
            assert replayed.status_code == 201
            assert replayed.json() == retried.json()
            assert replayed.headers["idempotent-replayed"] == "true"
    finally:
        await database.dispose()
