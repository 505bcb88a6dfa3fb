"""Which endpoints an event goes to: those subscribed when it was recorded (as Svix does it),
however late the worker fans it out. An endpoint made after the event does not get it, one
disabled since gets nothing, and a test event goes to its own endpoint only.

The fan-out runs in one-off rounds, after the changes to the endpoints, as a worker that is
behind would run it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.models import WebhookDelivery
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
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


async def _endpoint(http: httpx.AsyncClient, world: World, receiver: Receiver, path: str) -> str:
    endpoint = await create_endpoint(http, world, receiver.url(path))
    receiver.secrets.append(endpoint["secret"])
    endpoint_id: str = endpoint["id"]
    return endpoint_id


async def _disable(http: httpx.AsyncClient, world: World, endpoint_id: str) -> None:
    url = f"/v1/webhook-endpoints/{endpoint_id}"
    system = world.headers("system_a")
    etag = (await http.get(url, headers=system)).headers["ETag"]
    disabled = await http.patch(url, json={"enabled": False}, headers={**system, "If-Match": etag})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert disabled.json()["disabled_reason"] == "manual"


def _endpoints(deliveries: list[WebhookDelivery]) -> list[str]:
    return sorted(d.endpoint_id for d in deliveries)


def _paths_of(receiver: Receiver, event_id: str) -> list[str]:
    return sorted(r.path for r in receiver.requests if r.webhook_id == event_id)


async def test_an_event_goes_to_the_endpoints_that_existed_when_it_was_recorded(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    first = await _endpoint(client, world, receiver, "/first")
    before = await add_event(world)
    second = await _endpoint(client, world, receiver, "/second")  # made after the event...
    await deliver(world, receiver, now_utc())  # ...and before it is fanned out

    assert _endpoints(await deliveries_of(world, before)) == [first]
    assert _paths_of(receiver, before) == ["/first"]

    after = await add_event(world)
    await deliver(world, receiver, now_utc())
    assert _endpoints(await deliveries_of(world, after)) == sorted([first, second])
    assert _paths_of(receiver, after) == ["/first", "/second"]
    assert all(r.verified_with for r in receiver.requests)
    # And the first event was not sent to the second endpoint late either.
    assert _endpoints(await deliveries_of(world, before)) == [first]


async def test_an_endpoint_disabled_before_the_fan_out_gets_no_delivery(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    kept = await _endpoint(client, world, receiver, "/kept")
    disabled = await _endpoint(client, world, receiver, "/disabled")
    event_id = await add_event(world)
    await _disable(client, world, disabled)  # after the event, before the fan-out
    await deliver(world, receiver, now_utc())

    # No delivery row at all for it (not even a cancelled one), and nothing sent there.
    assert _endpoints(await deliveries_of(world, event_id)) == [kept]
    assert _paths_of(receiver, event_id) == ["/kept"]
    # Nor for what happens while it stays disabled.
    later = await add_event(world)
    await deliver(world, receiver, now_utc())
    assert _endpoints(await deliveries_of(world, later)) == [kept]
    assert [r.path for r in receiver.requests] == ["/kept", "/kept"]


async def test_a_test_event_reaches_only_its_own_endpoint(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    enabled = await _endpoint(client, world, receiver, "/enabled")
    disabled = await _endpoint(client, world, receiver, "/disabled")
    await _disable(client, world, disabled)
    system = world.headers("system_a")

    tests = {}
    for endpoint_id in (enabled, disabled):  # a disabled endpoint can still be tested
        sent = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/test", headers=system)
        assert sent.status_code == 202, sent.text
        tests[endpoint_id] = sent.json()["id"]
    # An endpoint made since, subscribed to every type, gets neither.
    latecomer = await _endpoint(client, world, receiver, "/latecomer")
    await deliver(world, receiver, now_utc())

    assert _endpoints(await deliveries_of(world, tests[enabled])) == [enabled]
    assert _endpoints(await deliveries_of(world, tests[disabled])) == [disabled]
    assert _paths_of(receiver, tests[enabled]) == ["/enabled"]
    assert _paths_of(receiver, tests[disabled]) == ["/disabled"]
    assert len(receiver.requests) == 2
    assert all(r.payload["type"] == "webhook.test" for r in receiver.requests)
    assert all(r.verified_with for r in receiver.requests)
    assert latecomer not in {d.endpoint_id for d in await deliveries_of(world)}

    # A test sent after the latecomer exists still goes to its own endpoint only.
    sent = await client.post(f"/v1/webhook-endpoints/{enabled}/test", headers=system)
    await deliver(world, receiver, now_utc())
    assert _endpoints(await deliveries_of(world, sent.json()["id"])) == [enabled]
    assert _paths_of(receiver, sent.json()["id"]) == ["/enabled"]
