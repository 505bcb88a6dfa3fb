"""A tenant's webhook URL is called from inside our network: it may not reach loopback, the
private network or the cloud metadata service, neither when it is saved nor when it is called
(DNS can change in between). All DNS goes through `app.core.outbound._resolve`, replaced here
by a table, so that no test depends on real DNS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core import outbound
from tests.conftest import client_for
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    attempts_of,
    deliver,
    deliveries_of,
    now_utc,
    receiver_settings,
)
from tests.world import World, build_world

PUBLIC = "93.184.216.34"


class Dns:
    """Hostnames to addresses, changeable mid-test; an IP literal resolves to itself."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {
            "hooks.vendor.example": [PUBLIC],
            "rebind.vendor.example": ["127.0.0.1"],
            "mixed.vendor.example": [PUBLIC, "10.1.2.3"],
        }

    async def resolve(self, host: str, port: int) -> list[str]:
        if host in self.names:
            return self.names[host]
        if host.replace(".", "").isdigit() or ":" in host:
            return [host]
        raise OSError("no such host")


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    table = Dns()
    monkeypatch.setattr(outbound, "_resolve", table.resolve)
    return table


async def _create(http: httpx.AsyncClient, world: World, url: str) -> httpx.Response:
    return await http.post(
        "/v1/webhook-endpoints", json={"url": url}, headers=world.headers("system_a")
    )


def _names_url(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "urn:homework:problem:validation-error"
    (error,) = body["errors"]
    assert error["pointer"] == "/url" and error["code"] == "unsafe_url"
    message: str = error["message"]
    return message


@pytest.fixture
async def app(make_settings: Any) -> AsyncIterator[FastAPI]:
    # An allow-list that names other hosts: it must not open the door to these.
    settings = make_settings(outbound_allowed_hosts="hooks.internal.example:8443,169.254.169.254")
    async with app_for(settings) as application:
        yield application


UNSAFE = [
    ("https://127.0.0.1/hook", "private address"),
    ("https://[::1]/hook", "private address"),
    ("https://10.0.0.1/hook", "private address"),
    ("https://192.168.1.20:8443/hook", "private address"),
    ("https://[::ffff:127.0.0.1]/hook", "private address"),
    # Refused even though the operator's allow-list names it.
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://rebind.vendor.example/hook", "private address"),
    # One bad address is enough: we cannot know which one a connection would use.
    ("https://mixed.vendor.example/hook", "private address"),
    ("https://nowhere.vendor.example/hook", "does not resolve"),
    ("http://hooks.vendor.example/hook", "only https"),
    ("https://user:pw@hooks.vendor.example/hook", "credentials"),
    ("ftp://hooks.vendor.example/hook", "only http and https"),
]


async def test_an_unsafe_url_is_refused_when_saved(
    client: httpx.AsyncClient, world: World, dns: Dns
) -> None:
    for url, reason in UNSAFE:
        assert reason in _names_url(await _create(client, world, url)), url
    listed = await client.get("/v1/webhook-endpoints", headers=world.headers("system_a"))
    assert listed.json()["data"] == []


async def test_a_public_https_url_is_accepted_and_a_change_to_an_unsafe_one_refused(
    client: httpx.AsyncClient, world: World, dns: Dns
) -> None:
    created = await _create(client, world, "https://hooks.vendor.example/hook")
    assert created.status_code == 201, created.text
    changed = await client.patch(
        f"/v1/webhook-endpoints/{created.json()['id']}",
        json={"url": "https://rebind.vendor.example/hook"},
        headers=world.headers("system_a"),
    )
    assert "private address" in _names_url(changed)


async def test_http_is_accepted_only_where_the_operator_allows_it(
    make_settings: Any, dns: Dns
) -> None:
    async with app_for(make_settings(outbound_allow_http=True)) as allowing:
        allowed_world = await build_world(allowing)
        async with client_for(allowing) as http:
            created = await _create(http, allowed_world, "http://hooks.vendor.example/hook")
            assert created.status_code == 201, created.text
            # Allowing http allows no private address.
            refused = await _create(http, allowed_world, "http://127.0.0.1:8080/hook")
            assert "private address" in _names_url(refused)


async def test_a_name_that_resolves_to_loopback_by_the_time_of_sending_gets_nothing(
    make_settings: Any, dns: Dns, receiver: Receiver
) -> None:
    """DNS rebinding: public when saved, loopback when called. The loopback receiver itself is
    allowed (by address and port), which must not make a hostile name pointing there allowed."""
    async with app_for(receiver_settings(make_settings, receiver)) as application:
        world = await build_world(application)
        async with client_for(application) as http:
            created = await _create(
                http, world, f"http://hooks.vendor.example:{receiver.port}/hook"
            )
            assert created.status_code == 201, created.text
            endpoint_id = created.json()["id"]
            dns.names["hooks.vendor.example"] = ["127.0.0.1"]
            await add_event(world)
            await deliver(world, receiver, now_utc())

            assert receiver.requests == []
            (delivery,) = await deliveries_of(world)
            (attempt,) = await attempts_of(world, delivery.id)
            assert attempt.status_code is None
            assert attempt.error == "refused: the host resolves to a private address"
            log = await http.get(
                f"/v1/webhook-endpoints/{endpoint_id}/deliveries",
                headers=world.headers("system_a"),
            )
            assert log.json()["data"][0]["attempts"][0]["error"].startswith("refused")
            assert log.json()["data"][0]["state"] == "pending"  # retried, in case DNS recovers
