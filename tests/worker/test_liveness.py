"""The worker's liveness probe: 200 while every loop goes round, 503 naming the loop that
stopped; and `homework worker` serving it, and /metrics, on its own port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from app.worker.jobs import Job
from app.worker.liveness import Liveness
from app.worker.loop import run_forever
from app.worker.probe import serving
from tests.metrics_scrape import parse
from tests.served import BIN, free_port, service_env

STALL = 1.0


def test_a_loop_is_stalled_once_past_its_own_deadline_and_the_allowance() -> None:
    now = [100.0]
    liveness = Liveness(stall_seconds=5, clock=lambda: now[0])
    liveness.expect("fire_reminders", 60)  # going to sleep for a minute
    now[0] += 64
    assert liveness.stalled() == []
    now[0] += 2
    assert liveness.stalled() == ["fire_reminders"]
    liveness.expect("fire_reminders")  # back, and on a batch
    assert liveness.stalled() == []
    liveness.done("fire_reminders")
    now[0] += 1000
    assert liveness.stalled() == [] and liveness.loops == []


async def _quick(_database: Database, _now: datetime, _batch_size: int) -> int:
    return 0


async def _hangs_on_its_second_batch(_database: Database, _now: datetime, _size: int) -> int:
    _hangs_on_its_second_batch.calls += 1  # type: ignore[attr-defined]
    if _hangs_on_its_second_batch.calls > 1:  # type: ignore[attr-defined]
        await asyncio.Event().wait()  # a lock or a call that never ends
    return 0


async def _health(port: int) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await http.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


async def test_the_probe_fails_naming_the_loop_that_stopped(make_settings: Any) -> None:
    settings = make_settings(worker_interval_seconds=0.05, metrics_enabled=False)
    jobs = [Job("quick", _quick), Job("stuck", _hangs_on_its_second_batch)]
    answers = await _watch_then_cancel(settings, jobs)
    assert (200, {"status": "ok", "loops": ["quick", "stuck"]}) in answers  # before it stuck
    assert answers[-1] == (503, {"status": "stalled", "stalled": ["stuck"]})


async def _watch_then_cancel(settings: Settings, jobs: list[Job]) -> list[Any]:
    """Runs `jobs` for ever with the probe on a free port, asks it every 0.1 s for 2.5 s, then
    stops the worker (cancelled too: a stuck job never comes back to see `stop`)."""
    _hangs_on_its_second_batch.calls = 0  # type: ignore[attr-defined]
    stop, port = asyncio.Event(), free_port()
    liveness = Liveness(STALL)
    answers: list[Any] = []
    async with serving(liveness, "127.0.0.1", port):
        worker = asyncio.create_task(run_forever(settings, stop, jobs=jobs, liveness=liveness))
        try:
            for _ in range(25):
                await asyncio.sleep(0.1)
                answer = await _health(port)
                answers.append((answer.status_code, answer.json()))
        finally:
            stop.set()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    return answers


async def test_loops_that_keep_going_stay_healthy_even_when_their_batches_fail(
    make_settings: Any,
) -> None:
    async def fails(_database: Database, _now: datetime, _size: int) -> int:
        raise ConnectionRefusedError  # the database is down: not a reason for a restart

    settings = make_settings(worker_interval_seconds=0.05, metrics_enabled=False)
    answers = await _watch_then_cancel(settings, [Job("quick", _quick), Job("fails", fails)])
    assert {status for status, _ in answers} == {200}


@pytest.mark.usefixtures("postgres_only")
def test_homework_worker_serves_its_probe_and_metrics_and_check_reads_it(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(
        env="test", database_url=database_url, worker_port=str(port), worker_host="127.0.0.1"
    )
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([str(BIN / "homework"), "worker"], cwd=tmp_path, env=env,
                              stdout=log, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False)
                if "dispatch_webhooks" in health.json()["loops"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert health.status_code == 200
        assert set(health.json()["loops"]) >= {"fire_reminders", "dispatch_webhooks"}
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False)
        samples = parse(scraped.text)
        assert samples.value("homework_worker_batches_total", job="open_due") >= 1
        check = [str(BIN / "homework"), "worker", "--check"]
        assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0

        os.kill(worker.pid, signal.SIGSTOP)  # frozen: nothing answers, nothing goes round
        try:
            frozen = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
            assert frozen.returncode == 1 and "no worker answers" in frozen.stdout
        finally:
            os.kill(worker.pid, signal.SIGCONT)
    finally:
        worker.terminate()
        assert worker.wait(timeout=20) == 0
        log.close()
