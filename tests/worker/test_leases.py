"""Leases that match reality: a second worker joining while the first is still sending takes
nothing the first holds, and every attempt is signed at the moment it is sent.

The first worker holds more deliveries than it can send before its first lease would end (a
slow receiver, four at a time): only the lease renewals keep the second one off them. The
lease is made short for the test (its margin and renewal period are module settings), so the
whole fault lasts a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from app.main import create_app
from app.models import WebhookAttempt, WebhookDelivery
from app.worker import dispatcher
from tests.webhook_receiver import serve_receiver
from tests.worker.test_isolation import allowing, backlog_for_b, running_worker, until

DELIVERIES = 40


async def test_a_second_worker_joining_mid_send_sends_nothing_twice_and_nothing_stale(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Leases of 1 + 2 s, renewed every 0.3 s; the receiver takes 0.4 s an answer, so the
    # first worker's 40 deliveries need 4 s at 4 at a time: more than a lease.
    monkeypatch.setattr(dispatcher, "LEASE_MARGIN_SECONDS", 2.0)
    monkeypatch.setattr(dispatcher, "HEARTBEAT_SECONDS", 0.3)
    with serve_receiver() as receiver:
        receiver.while_answering = lambda: time.sleep(0.4)
        settings = allowing(make_settings, receiver, webhook_timeout_seconds=1.0)
        app = create_app(settings)
        try:
            await backlog_for_b(app, receiver, DELIVERIES)
            async with running_worker(settings):
                await until(lambda: len(receiver.requests) >= 4, 10)
                async with running_worker(settings):  # the second joins mid-send
                    await until(lambda: len(receiver.requests) >= DELIVERIES, 20)
                    await asyncio.sleep(0.5)  # anything sent twice would arrive by now
            async with app.state.database.sessionmaker() as session:
                attempts = await session.scalar(select(func.count()).select_from(WebhookAttempt))
                states = set((await session.scalars(select(WebhookDelivery.state))).all())
        finally:
            await app.state.database.dispose()

    sent = Counter(receiver.ids())
    assert len(sent) == DELIVERIES and set(sent.values()) == {1}, sent.most_common(3)
    assert attempts == DELIVERIES and states == {"delivered"}
    # Signed as each attempt started, not when it was claimed: the last ones waited ~4 s.
    assert all(r.verified_with for r in receiver.requests)
    staleness = [r.received_at - r.signed_at for r in receiver.requests]
    assert max(staleness) < 1.5, max(staleness)
