"""Delivery as a vendor's receiver sees it: signed, retried on the schedule, never lost, never
sent for what did not commit. Every request lands on a real HTTP server on loopback and is
verified there with the `standardwebhooks` package. Time is moved, never slept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.core.db import Database
from app.models import Event, WebhookDelivery
from app.services.events import EventType, record_event
from app.services.webhooks.dispatch import JITTER, RETRY_DELAYS
from app.worker.loop import run_once
from tests.homework_helpers import freeze
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    attempts_of,
    create_endpoint,
    deliver,
    deliveries_of,
    now_utc,
    receiver_settings,
)
from tests.world import World


@pytest.fixture
async def app(make_settings: Any, receiver: Receiver) -> AsyncIterator[FastAPI]:
    async with app_for(receiver_settings(make_settings, receiver)) as application:
        yield application


async def _endpoint(
    http: httpx.AsyncClient, world: World, receiver: Receiver, path: str = "/hook", **kw: Any
) -> dict[str, Any]:
    endpoint = await create_endpoint(http, world, receiver.url(path), **kw)
    receiver.secrets = [*receiver.secrets, endpoint["secret"]]
    return endpoint


async def _log(http: httpx.AsyncClient, world: World, endpoint_id: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=world.headers("system_a")
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def _get(http: httpx.AsyncClient, world: World, endpoint_id: str) -> dict[str, Any]:
    response = await http.get(
        f"/v1/webhook-endpoints/{endpoint_id}", headers=world.headers("system_a")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _z(at: Any) -> str:
    return str(at.isoformat().replace("+00:00", "Z"))


def _latest_due(attempt: int) -> timedelta:
    """When the retry after failed attempt `attempt` is due at the latest (jitter included)."""
    return RETRY_DELAYS[attempt - 1] * (1 + JITTER) + timedelta(seconds=1)


async def test_a_receiver_failing_twice_gets_the_same_delivery_three_times(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    receiver.answer((500, {}, b"x" * 5000), (500, {}, b"still down"))  # then 200 "ok"
    event_id = await add_event(world)
    t0 = now_utc()

    await deliver(world, receiver, t0)
    assert len(receiver.requests) == 1
    (pending,) = await _log(client, world, endpoint["id"])
    assert pending["state"] == "pending" and pending["attempt_count"] == 1
    # The first retry is due 5 s later, give or take 10 %: not before, and then it goes.
    assert _z(t0 + timedelta(seconds=4.5)) <= pending["next_attempt_at"]
    assert pending["next_attempt_at"] <= _z(t0 + timedelta(seconds=5.5))
    await deliver(world, receiver, t0 + timedelta(seconds=4))
    assert len(receiver.requests) == 1
    t1 = t0 + _latest_due(1)
    await deliver(world, receiver, t1)
    assert len(receiver.requests) == 2
    # The second, 5 min after that (4.5 to 5.5 min).
    await deliver(world, receiver, t1 + timedelta(minutes=4))
    assert len(receiver.requests) == 2
    t2 = t1 + _latest_due(2)
    await deliver(world, receiver, t2)
    assert len(receiver.requests) == 3
    await deliver(world, receiver, t2 + timedelta(hours=12))
    assert len(receiver.requests) == 3

    # One message, three times: the same webhook-id (the event's id), each one verified.
    assert receiver.ids() == [event_id] * 3
    assert all(r.verified_with == [endpoint["secret"]] for r in receiver.requests)
    assert [r.payload["id"] for r in receiver.requests] == [event_id] * 3
    assert [r.headers["webhook-timestamp"] for r in receiver.requests] == [
        str(int(t.timestamp())) for t in (t0, t1, t2)
    ]

    (delivery,) = await _log(client, world, endpoint["id"])
    assert delivery["event_id"] == event_id and delivery["event_type"] == "assignment.created"
    assert delivery["state"] == "delivered" and delivery["attempt_count"] == 3
    assert delivery["delivered_at"] == _z(t2) and delivery["next_attempt_at"] is None
    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["attempted_at"] for a in attempts] == [_z(t0), _z(t1), _z(t2)]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert all(isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in attempts)
    # The first 2 KiB of what the receiver said, for the vendor's own debugging.
    assert [a["response_body"] for a in attempts] == ["x" * 2048, "still down", "ok"]
    assert [a["error"] for a in attempts] == [None, None, None]


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        pytest.param("600", timedelta(seconds=600), id="seconds"),
        pytest.param(None, timedelta(seconds=900), id="http-date"),
    ],
)
async def test_retry_after_is_honoured(
    client: httpx.AsyncClient,
    world: World,
    receiver: Receiver,
    retry_after: str | None,
    wait: timedelta,
) -> None:
    await _endpoint(client, world, receiver)
    t0 = now_utc()
    value = retry_after or format_datetime(t0 + wait, usegmt=True)
    receiver.answer((503, {"Retry-After": value}, b"busy"))
    await add_event(world)

    await deliver(world, receiver, t0)
    await deliver(world, receiver, t0 + _latest_due(1))  # where the schedule alone would retry
    await deliver(world, receiver, t0 + wait - timedelta(seconds=1))
    assert len(receiver.requests) == 1
    await deliver(world, receiver, t0 + wait)
    assert len(receiver.requests) == 2
    (delivery,) = await deliveries_of(world)
    assert delivery.state == "delivered"


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        # Not a number although str.isdigit() says it is; not a date either: the schedule.
        pytest.param("\u00b2", _latest_due(1), id="superscript-two"),
        pytest.param("soon", _latest_due(1), id="words"),
        # Too big for a timedelta: as long as we ever wait, a day.
        pytest.param("9" * 30, timedelta(hours=24), id="huge"),
    ],
)
async def test_a_strange_retry_after_is_one_failed_attempt_not_a_broken_batch(
    client: httpx.AsyncClient,
    world: World,
    receiver: Receiver,
    retry_after: str,
    wait: timedelta,
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    receiver.answer((503, {"Retry-After": retry_after}, b""))
    await add_event(world)
    t0 = now_utc()

    counts = await deliver(world, receiver, t0)
    assert counts["dispatch_webhooks"] == 1
    (delivery,) = await _log(client, world, endpoint["id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [503]
    await deliver(world, receiver, t0 + wait - timedelta(seconds=2))
    assert len(receiver.requests) == 1
    await deliver(world, receiver, t0 + wait)
    assert len(receiver.requests) == 2


async def test_a_receiver_that_never_answers_2xx_exhausts_the_schedule_then_is_disabled(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    receiver.default = (500, {}, b"down")
    first = await add_event(world)
    t0 = t = now_utc()

    await deliver(world, receiver, t)
    for attempt in range(1, len(RETRY_DELAYS) + 1):
        t += _latest_due(attempt)
        await deliver(world, receiver, t)
        assert len(receiver.requests) == attempt + 1
    await deliver(world, receiver, t + timedelta(days=1))

    assert receiver.ids() == [first] * 8
    (delivery,) = await _log(client, world, endpoint["id"])
    assert delivery["state"] == "failed" and delivery["attempt_count"] == 8
    assert delivery["next_attempt_at"] is None
    # About 28 hours of failures: still enabled, and it says since when it has been failing.
    state = await _get(client, world, endpoint["id"])
    assert state["enabled"] is True and state["disabled_reason"] is None
    assert state["failing_since"] == _z(t0)

    # Five days without a success: the next failure disables it.
    await add_event(world)
    await deliver(world, receiver, t0 + timedelta(days=5))
    assert len(receiver.requests) == 9
    state = await _get(client, world, endpoint["id"])
    assert state["enabled"] is False and state["disabled_reason"] == "failing"
    assert state["disabled_at"] == _z(t0 + timedelta(days=5))

    # A disabled endpoint gets nothing more.
    third = await add_event(world)
    await deliver(world, receiver, t0 + timedelta(days=5, hours=1))
    assert len(receiver.requests) == 9
    assert await deliveries_of(world, third) == []


async def test_a_success_clears_the_failure_record(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    receiver.answer((500, {}, b""))
    await add_event(world)
    t0 = now_utc()
    await deliver(world, receiver, t0)
    assert (await _get(client, world, endpoint["id"]))["failing_since"] == _z(t0)
    t1 = t0 + _latest_due(1)
    await deliver(world, receiver, t1)
    state = await _get(client, world, endpoint["id"])
    assert state["failing_since"] is None and state["last_success_at"] == _z(t1)
    # A failure five days later is a fresh start, not five days of failing.
    receiver.answer((500, {}, b""))
    await add_event(world)
    await deliver(world, receiver, t0 + timedelta(days=5, minutes=1))
    assert (await _get(client, world, endpoint["id"]))["enabled"] is True


async def test_410_gone_disables_the_endpoint_at_once(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    receiver.answer((410, {}, b"gone"))
    await add_event(world)
    t0 = now_utc()
    await deliver(world, receiver, t0)

    state = await _get(client, world, endpoint["id"])
    assert state["enabled"] is False and state["disabled_reason"] == "gone"
    (delivery,) = await _log(client, world, endpoint["id"])
    assert delivery["state"] == "failed" and delivery["attempts"][0]["status_code"] == 410
    later = await add_event(world)
    await deliver(world, receiver, t0 + timedelta(hours=1))
    assert len(receiver.requests) == 1 and await deliveries_of(world, later) == []

    # Re-enabled by the vendor, it gets events again.
    enabled = await client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}",
        json={"enabled": True},
        headers=world.headers("system_a"),
    )
    assert enabled.status_code == 200 and enabled.json()["disabled_reason"] is None
    again = await add_event(world)
    await deliver(world, receiver, t0 + timedelta(hours=2))
    assert receiver.ids()[1:] == [again]


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    receiver.answer((302, {"Location": receiver.url("/elsewhere")}, b""))
    event_id = await add_event(world)
    t0 = now_utc()

    await deliver(world, receiver, t0)
    assert [r.path for r in receiver.requests] == ["/hook"]
    (delivery,) = await _log(client, world, endpoint["id"])
    assert delivery["state"] == "pending"
    assert [a["status_code"] for a in delivery["attempts"]] == [302]
    await deliver(world, receiver, t0 + _latest_due(1))
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]
    assert receiver.ids() == [event_id, event_id]
    assert (await deliveries_of(world))[0].state == "delivered"


async def test_during_a_rotation_both_secrets_sign_then_only_the_new_one(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    old = endpoint["secret"]
    t0 = now_utc()
    freeze(world, t0.isoformat())
    await add_event(world)
    await deliver(world, receiver, t0)

    rotated = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"overlap_hours": 24},
        headers=world.headers("system_a"),
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated.json()["previous_secret_expires_at"] == _z(t0 + timedelta(hours=24))
    receiver.secrets = [old, new]

    await add_event(world)
    await deliver(world, receiver, t0 + timedelta(hours=1))
    await add_event(world)
    await deliver(world, receiver, t0 + timedelta(hours=24, seconds=1))

    before, during, after = receiver.requests
    assert before.verified_with == [old]
    # Each secret verifies on its own: a receiver holding either one accepts the delivery.
    assert during.verified_with == [old, new]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert after.verified_with == [new]
    assert after.errors == ["No matching signature found"]
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_a_post_that_outlasts_the_timeout_is_a_timeout(
    client: httpx.AsyncClient, world: World, receiver: Receiver, make_settings: Any
) -> None:
    """The timeout bounds the whole answer, not each read: a receiver dripping its answer a
    byte at a time cannot hold a worker (and its lease) for long."""
    await _endpoint(client, world, receiver)
    receiver.default = (500, {}, b"x" * 40)
    receiver.drip_seconds = 0.03  # each read well within the timeout; the whole, 1.2 s
    await add_event(world)
    # A worker process of its own, with a short timeout.
    worker = Database(
        make_settings(
            outbound_allow_http=True,
            outbound_allowed_hosts=f"127.0.0.1:{receiver.port}",
            webhook_timeout_seconds=0.5,
        )
    )
    try:
        receiver.now = t0 = now_utc()
        await run_once(worker, t0, 50)
    finally:
        await worker.dispose()
    (delivery,) = await deliveries_of(world)
    (attempt,) = await attempts_of(world, delivery.id)
    assert attempt.error == "timeout" and attempt.status_code == 500
    assert attempt.latency_ms is not None and attempt.latency_ms < 1500
    assert delivery.state == "pending" and delivery.attempt_count == 1


async def test_an_event_whose_transaction_rolls_back_is_never_delivered(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    await _endpoint(client, world, receiver)
    database = world.app.state.database
    async with database.sessionmaker() as session:
        transaction = await session.begin()
        record_event(
            session,
            world.a.id,
            EventType.assignment_cancelled,
            client_id=world.a.clients["A1"],
            assignment_id="asg_01jd8x5m2q7c9v3k4t6w8y0z1c",
        )
        await session.flush()  # written, and then the change it belonged to fails
        await transaction.rollback()
    committed = await add_event(world)

    t0 = now_utc()
    await deliver(world, receiver, t0)
    await deliver(world, receiver, t0 + timedelta(hours=1))
    assert receiver.ids() == [committed]
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 1
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


async def test_sequence_numbers_count_each_tenants_events_in_fan_out_order(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    await _endpoint(client, world, receiver, path="/a")
    await _endpoint(client, world, receiver, path="/b", role="system_b")
    first_a = [await add_event(world) for _ in range(3)]
    first_b = [await add_event(world, tenant_id=world.b.id) for _ in range(2)]
    t0 = now_utc()
    await deliver(world, receiver, t0)
    then_a = [await add_event(world) for _ in range(2)]
    await deliver(world, receiver, t0 + timedelta(seconds=1))

    sequence = {r.webhook_id: r.payload["sequence"] for r in receiver.requests}
    assert len(sequence) == 7 == len(receiver.requests)
    # Within a fan-out, in event order; each tenant counts from 1, by one, with no gaps.
    assert [sequence[e] for e in sorted(first_a)] == [1, 2, 3]
    assert [sequence[e] for e in sorted(then_a)] == [4, 5]
    assert [sequence[e] for e in sorted(first_b)] == [1, 2]
    assert {r.path for r in receiver.requests if r.webhook_id in first_b} == {"/b"}
    # The event as the API shows it carries the same number.
    shown = await client.get(f"/v1/events/{then_a[1]}", headers=world.headers("system_a"))
    assert shown.json()["sequence"] == 5
