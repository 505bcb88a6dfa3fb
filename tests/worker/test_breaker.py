"""The circuit breaker per webhook endpoint: a receiver that keeps timing out is cut off for a
while, so that its deliveries wait untouched instead of holding slots, and it is let back in
as soon as it answers again.

First the state machine on its own (no database, a clock of our own), then the real dispatcher
in one-off rounds at fixed times against a loopback receiver that answers too late.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.core.logging import JsonFormatter
from app.main import create_app
from app.models import WebhookAttempt, WebhookDelivery
from app.services.events import EventType, record_event
from app.services.webhooks.dispatch import INTERRUPTED, Claimed, Outcome
from app.worker.breaker import Breakers
from app.worker.jobs import dispatcher_for
from app.worker.loop import run_once
from tests.conftest import client_for
from tests.webhook_receiver import create_endpoint, deliveries_of, serve_receiver
from tests.worker.test_isolation import allowing, noise_for_b
from tests.world import World, build_world

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COOLDOWN = timedelta(seconds=30)
MAX_COOLDOWN = timedelta(minutes=10)
USUAL = 4


def _claimed(endpoint_id: str = "whe_slow") -> Claimed:
    return Claimed(
        delivery_id="whd_1",
        endpoint_id=endpoint_id,
        tenant_id="tnt_1",
        event_id="evt_1",
        url="https://hooks.example/in",
        secrets=("whsec_x",),
        body=b"{}",
        attempt=1,
    )


def unanswered(at: datetime, endpoint_id: str = "whe_slow", error: str = "timeout") -> Outcome:
    return Outcome(_claimed(endpoint_id), at, None, 300, error=error)


def answered(at: datetime, status: int = 200, endpoint_id: str = "whe_slow") -> Outcome:
    return Outcome(_claimed(endpoint_id), at, status, 20)


def interrupted(at: datetime, endpoint_id: str = "whe_slow") -> Outcome:
    return Outcome(_claimed(endpoint_id), at, None, 0, error=INTERRUPTED)


def breakers() -> Breakers:
    return Breakers(threshold=5, cooldown=COOLDOWN, max_cooldown=MAX_COOLDOWN)


def fail(b: Breakers, times: int, at: datetime, endpoint_id: str = "whe_slow") -> None:
    for _ in range(times):
        b.observe(unanswered(at, endpoint_id), at)


def opened(at: datetime) -> Breakers:
    """A breaker that opened at `at` (its threshold reached then)."""
    b = breakers()
    fail(b, b.threshold, at)
    return b


# The state machine.


def test_closed_gives_the_usual_slots() -> None:
    b = breakers()
    assert b.slots("whe_slow", USUAL, T0) == USUAL
    assert not b.is_open("whe_slow", T0)
    assert b.open_endpoints(T0) == []


@pytest.mark.parametrize("error", ["timeout", "ConnectError", "RemoteProtocolError"])
def test_threshold_unanswered_in_a_row_open_it_for_the_cooldown(error: str) -> None:
    b = breakers()
    for _ in range(b.threshold - 1):
        b.observe(unanswered(T0, error=error), T0)
    assert b.slots("whe_slow", USUAL, T0) == USUAL  # one short of the threshold: still closed

    b.observe(unanswered(T0, error=error), T0)
    assert b.slots("whe_slow", USUAL, T0) == 0
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN - timedelta(milliseconds=1)) == 0
    assert b.is_open("whe_slow", T0 + timedelta(seconds=10))
    assert b.open_endpoints(T0) == ["whe_slow"]
    # Then half-open: one probe at a time, however many slots it usually has.
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN) == 1
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN + timedelta(minutes=5)) == 1
    assert not b.is_open("whe_slow", T0 + COOLDOWN)


def test_one_endpoint_open_leaves_the_others_closed() -> None:
    b = opened(T0)
    assert b.slots("whe_slow", USUAL, T0) == 0
    assert b.slots("whe_other", USUAL, T0) == USUAL
    fail(b, b.threshold - 1, T0, "whe_other")
    assert b.slots("whe_other", USUAL, T0) == USUAL


@pytest.mark.parametrize("status", [200, 204, 404, 429, 500, 503])
def test_an_answer_of_any_status_closes_it(status: int) -> None:
    b = opened(T0)
    probe_at = T0 + COOLDOWN
    assert b.slots("whe_slow", USUAL, probe_at) == 1
    b.observe(answered(probe_at, status), probe_at)
    assert b.slots("whe_slow", USUAL, probe_at) == USUAL
    # Closed for good, with its count back at zero: it takes a full threshold to open again.
    fail(b, b.threshold - 1, probe_at)
    assert b.slots("whe_slow", USUAL, probe_at) == USUAL
    fail(b, 1, probe_at)
    assert b.slots("whe_slow", USUAL, probe_at) == 0
    assert b.slots("whe_slow", USUAL, probe_at + COOLDOWN) == 1  # the first cooldown again


def test_a_failed_probe_opens_it_again_for_twice_as_long_up_to_the_cap() -> None:
    b = opened(T0)
    at, cooldown = T0, COOLDOWN
    expected = [60, 120, 240, 480, 600, 600]  # seconds: doubled each time, capped at 10 min
    for seconds in expected:
        at = at + cooldown  # half-open now: the probe goes, and gets no answer
        assert b.slots("whe_slow", USUAL, at) == 1
        b.observe(unanswered(at), at)
        cooldown = timedelta(seconds=seconds)
        assert b.slots("whe_slow", USUAL, at) == 0
        assert b.slots("whe_slow", USUAL, at + cooldown - timedelta(milliseconds=1)) == 0, seconds
        assert b.slots("whe_slow", USUAL, at + cooldown) == 1, seconds
    # And a probe that is answered after all that closes it at once.
    at = at + cooldown
    b.observe(answered(at, 500), at)
    assert b.slots("whe_slow", USUAL, at) == USUAL


def test_interrupted_attempts_change_nothing() -> None:
    # Closed, one short of the threshold: interruptions neither count nor reset the count.
    b = breakers()
    fail(b, b.threshold - 1, T0)
    for _ in range(10):
        b.observe(interrupted(T0), T0)
    assert b.slots("whe_slow", USUAL, T0) == USUAL
    fail(b, 1, T0)
    assert b.slots("whe_slow", USUAL, T0) == 0

    # Open: no longer, no shorter.
    b = opened(T0)
    b.observe(interrupted(T0 + timedelta(seconds=5)), T0 + timedelta(seconds=5))
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN - timedelta(milliseconds=1)) == 0
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN) == 1

    # Half-open: an interrupted probe neither closes it nor opens it again.
    probe_at = T0 + COOLDOWN
    b.observe(interrupted(probe_at), probe_at)
    assert b.slots("whe_slow", USUAL, probe_at) == 1
    # ... and the next probe that fails reopens it for twice the cooldown, not more.
    b.observe(unanswered(probe_at), probe_at)
    assert b.slots("whe_slow", USUAL, probe_at + 2 * COOLDOWN - timedelta(milliseconds=1)) == 0
    assert b.slots("whe_slow", USUAL, probe_at + 2 * COOLDOWN) == 1


def test_an_answer_in_between_resets_the_count() -> None:
    b = breakers()
    fail(b, b.threshold - 1, T0)
    for status in (200, 500):
        b.observe(answered(T0, status), T0)
        fail(b, b.threshold - 1, T0)
        assert b.slots("whe_slow", USUAL, T0) == USUAL, status  # never `threshold` in a row
    fail(b, 1, T0)
    assert b.slots("whe_slow", USUAL, T0) == 0


# A regression test (a bug before 8608d10, app/worker/breaker.py, Breakers.observe): attempts
# already in flight when the circuit opened (up to HOMEWORK_WEBHOOK_MAX_PER_ENDPOINT - 1 of
# them, normally timing out together with the one that opened it) each counted as a failed
# probe and doubled the cooldown: with the default 4 slots the first opening lasted 4 minutes
# instead of 30 s. Only a failure of an attempt started once the cooldown is over (the probe)
# may lengthen it.
def test_attempts_already_in_flight_when_it_opened_do_not_lengthen_the_cooldown() -> None:
    b = breakers()
    started = T0 - timedelta(milliseconds=300)  # all four slots' attempts began together
    for _ in range(b.threshold + USUAL - 1):
        b.observe(unanswered(started), T0)  # the fifth opens it, three stragglers follow
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN - timedelta(milliseconds=1)) == 0
    assert b.slots("whe_slow", USUAL, T0 + COOLDOWN + timedelta(seconds=1)) == 1


# The real dispatcher, one round at a time.

PENDING = 12  # at the slow endpoint: well over the threshold plus its slots
TIMEOUT = 0.3


async def _events_for_a(world: World, count: int) -> None:
    async with world.app.state.database.sessionmaker() as session, session.begin():
        for n in range(count):
            record_event(
                session,
                world.a.id,
                EventType.assignment_created,
                client_id=world.a.clients["A1"],
                assignment_id=f"asg_slow{n:022d}",
            )


async def _attempts(world: World, endpoint_id: str) -> int:
    async with world.app.state.database.sessionmaker() as session:
        count: int = await session.scalar(
            select(func.count())
            .select_from(WebhookAttempt)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
        )
        return count


async def test_an_endpoint_that_keeps_timing_out_is_cut_off_then_probed_then_let_back_in(
    make_settings: Any,
) -> None:
    with serve_receiver() as slow, serve_receiver() as fast:
        slow.while_answering = lambda: time.sleep(1.0)  # well past the 0.3 s deadline
        settings = allowing(make_settings, slow, fast, webhook_timeout_seconds=TIMEOUT)
        app = create_app(settings)
        try:
            world = await build_world(app)
            async with client_for(app) as http:
                slow_id = (await create_endpoint(http, world, slow.url()))["id"]
                b_endpoint = await create_endpoint(http, world, fast.url(), role="system_b")
            fast.secrets = [b_endpoint["secret"]]
            database = app.state.database
            # The one-off rounds' dispatcher is kept per database: its breakers carry over.
            breakers = dispatcher_for(database).breakers
            threshold, cooldown = breakers.threshold, breakers.cooldown
            per_endpoint = settings.webhook_max_per_endpoint

            async def round_at(at: datetime) -> dict[str, int]:
                slow.now = fast.now = at
                return await run_once(database, at, 50)

            await _events_for_a(world, PENDING)
            await noise_for_b(world, 3)
            t0 = datetime.now(UTC).replace(microsecond=0)

            # 1. It times out until the circuit opens: the rest are not attempted at all.
            await round_at(t0)
            tried = await _attempts(world, slow_id)
            assert threshold <= tried <= threshold + per_endpoint, tried
            slow_deliveries = [d for d in await deliveries_of(world) if d.endpoint_id == slow_id]
            assert len(slow_deliveries) == PENDING
            untouched = [d for d in slow_deliveries if d.attempt_count == 0]
            assert len(untouched) == PENDING - tried
            assert all(d.state == "pending" for d in slow_deliveries)
            assert all(d.lease_owner is None and d.lease_until is None for d in slow_deliveries)
            assert breakers.is_open(slow_id, t0)
            # Tenant B's endpoint got everything in the same round.
            assert len(fast.requests) == 3 and all(r.verified_with for r in fast.requests)

            # 2. Open: its deliveries (retries due too by now) wait; B's new events go at once.
            await noise_for_b(world, 2)
            await round_at(t0 + timedelta(seconds=10))
            assert await _attempts(world, slow_id) == tried
            assert len(fast.requests) == 5

            # 3. Half-open after the cooldown: exactly one probe, which gets no answer either,
            # so it is open again, for twice the cooldown.
            # (Before 8608d10 no probe went here: the attempts still in flight when it opened
            # had each doubled the cooldown; see the unit test above.)
            probe_at = t0 + cooldown + timedelta(seconds=1)
            await round_at(probe_at)
            assert await _attempts(world, slow_id) == tried + 1
            await round_at(probe_at + cooldown + timedelta(seconds=1))
            assert await _attempts(world, slow_id) == tried + 1

            # 4. The receiver is back: the next probe is answered, the circuit closes, and the
            # rest follow with the endpoint's usual slots.
            answering: list[tuple[float, float]] = []
            lock = threading.Lock()

            def quickly() -> None:
                began = time.monotonic()
                time.sleep(0.05)
                with lock:
                    answering.append((began, time.monotonic()))

            slow.while_answering = quickly
            back_at = probe_at + 2 * cooldown + timedelta(seconds=1)
            await round_at(back_at)
            assert not breakers.is_open(slow_id, back_at)
            assert breakers.slots(slow_id, per_endpoint, back_at) == per_endpoint
            slow_deliveries = [d for d in await deliveries_of(world) if d.endpoint_id == slow_id]
            assert {d.state for d in slow_deliveries} == {"delivered"}
            spans = sorted(answering)
            assert len(spans) == PENDING
            probe, others = spans[0], spans[1:]
            assert all(began >= probe[1] for began, _ in others)  # the probe went alone
            # A following round finds nothing left to send.
            before = await _attempts(world, slow_id)
            await round_at(back_at + timedelta(minutes=1))
            assert await _attempts(world, slow_id) == before
        finally:
            await app.state.database.dispose()


def test_opening_is_logged_by_endpoint_id_never_by_url(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="homework.webhooks")
    b = breakers()
    fail(b, b.threshold - 1, T0)
    assert not caplog.records
    fail(b, 1, T0)
    (line,) = caplog.records
    assert line.getMessage() == "webhook circuit opened"
    assert (line.endpoint_id, line.tenant_id, line.failures) == ("whe_slow", "tnt_1", 5)  # type: ignore[attr-defined]
    assert "hooks.example" not in JsonFormatter().format(line)
