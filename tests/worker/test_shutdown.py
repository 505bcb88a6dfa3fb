"""SIGTERM mid-batch, as Kubernetes sends it: `homework worker` (a real process) stops within its
grace, exits 0, leaves no lease behind, and what it did not finish is sent once afterwards.

Its receiver hangs on every request, so when the signal comes four attempts are in flight and
the rest of its deliveries are queued or unclaimed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.main import create_app
from app.models import WebhookAttempt, WebhookDelivery
from app.services.webhooks.dispatch import INTERRUPTED
from app.worker.loop import run_once
from tests.webhook_receiver import serve_receiver
from tests.worker.test_isolation import allowing, backlog_for_b, until

GRACE = 1.0
DELIVERIES = 30


async def test_sigterm_mid_batch_exits_within_the_grace_with_its_leases_released(
    make_settings: Any,
) -> None:
    with serve_receiver() as receiver:
        hanging: list[float] = []
        release = threading.Event()

        def hang() -> None:
            hanging.append(time.time())
            release.wait(10)

        receiver.while_answering = hang
        settings = allowing(make_settings, receiver, webhook_timeout_seconds=10.0)
        app = create_app(settings)
        try:
            await backlog_for_b(app, receiver, DELIVERIES)

            worker = _start_worker(settings.database_url, receiver.port)
            try:
                await until(lambda: len(hanging) >= 4, 20)
                signalled = time.monotonic()
                worker.send_signal(signal.SIGTERM)
                _, errors = await asyncio.to_thread(worker.communicate, timeout=20)
                stopped_in = time.monotonic() - signalled
            finally:
                if worker.poll() is None:
                    worker.kill()
                release.set()
            assert worker.returncode == 0, errors
            assert stopped_in < GRACE + 2.5, stopped_in

            # No lease left behind; the four cut off are logged as interrupted and due at once;
            # nothing else was attempted.
            async with app.state.database.sessionmaker() as session:
                deliveries = (await session.scalars(select(WebhookDelivery))).all()
                attempts = (await session.scalars(select(WebhookAttempt))).all()
            assert len(deliveries) == DELIVERIES
            assert {d.state for d in deliveries} == {"pending"}
            assert all(d.lease_owner is None and d.lease_until is None for d in deliveries)
            assert [a.error for a in attempts] == [INTERRUPTED] * 4

            # The next worker sends everything once.
            receiver.while_answering = None
            restarted = time.time()
            now = datetime.now(UTC)
            receiver.now = now
            assert (await run_once(app.state.database, now, 50))["dispatch_webhooks"] == DELIVERIES
        finally:
            await app.state.database.dispose()
    after = Counter(r.webhook_id for r in receiver.requests if r.received_at >= restarted)
    assert len(after) == DELIVERIES and set(after.values()) == {1}


def _start_worker(database_url: str, port: int) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOMEWORK_")},
        "HOMEWORK_ENV": "test",
        "HOMEWORK_DATABASE_URL": database_url,
        "HOMEWORK_OUTBOUND_ALLOW_HTTP": "true",
        "HOMEWORK_OUTBOUND_ALLOWED_HOSTS": f"127.0.0.1:{port}",
        "HOMEWORK_WEBHOOK_TIMEOUT_SECONDS": "10",
        "HOMEWORK_WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
