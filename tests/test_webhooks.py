"""Webhooks as the vendor's backend uses them: endpoints, what a delivery carries, the events
API, test events, replay and retention. Deliveries land on a real receiver on loopback and are
verified there with the `standardwebhooks` package.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.main import create_app
from app.models import WebhookAttempt
from app.services.events import EventType
from app.services.webhooks.dispatch import JITTER, RETRY_DELAYS
from app.webhook_catalog import CATALOGUE, WebhookPayload
from app.worker.jobs import prune_old_events as prune_old
from app.worker.loop import run_once
from tests.homework_helpers import complete, freeze, occurrence_of
from tests.webhook_receiver import (
    Receiver,
    add_event,
    app_for,
    create_endpoint,
    deliver,
    event_row,
    now_utc,
    receiver_settings,
)
from tests.world import World

AN_ID = re.compile(r"^[a-z]{3}_[0-9a-z]{26}$")


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


def _z(at: Any) -> str:
    return str(at.isoformat().replace("+00:00", "Z"))


async def test_an_endpoint_is_managed_by_its_tenant_only(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    system = world.headers("system_a")
    created = await client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url(), "event_types": ["completion.created", "occurrence.missed"]},
        headers=system,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["id"].startswith("whe_") and endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled"] is True and created.headers["ETag"]

    # The secret is shown when created (and rotated), never when read.
    read = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=system)
    assert read.status_code == 200 and "secret" not in read.json()
    assert read.json()["event_types"] == ["completion.created", "occurrence.missed"]
    listed = await client.get("/v1/webhook-endpoints", headers=system)
    assert [e["id"] for e in listed.json()["data"]] == [endpoint["id"]]

    unknown = await client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url(), "event_types": ["completion.created", "client.hacked"]},
        headers=system,
    )
    assert unknown.status_code == 422
    assert [e["pointer"] for e in unknown.json()["errors"]] == ["/event_types/1"]

    # Another tenant sees none of it, and cannot act on it.
    other = world.headers("system_b")
    base = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert (await client.get(base, headers=other)).status_code == 404
    assert (await client.get(f"{base}/deliveries", headers=other)).status_code == 404
    assert (await client.post(f"{base}/rotate-secret", json={}, headers=other)).status_code == 404
    assert (await client.post(f"{base}/test", headers=other)).status_code == 404
    assert (await client.delete(base, headers=other)).status_code == 404
    assert (await client.get("/v1/webhook-endpoints", headers=other)).json()["data"] == []
    # People's tokens do not manage webhooks at all.
    assert (await client.get(base, headers=world.headers("clinician_a1"))).status_code == 403

    assert (await client.delete(base, headers=system)).status_code == 204
    assert (await client.get(base, headers=system)).status_code == 404


async def test_a_completion_is_delivered_with_ids_and_nothing_a_person_wrote(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver, event_types=["completion.created"])
    freeze(world, "2026-11-22T12:00:00Z")
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    completed = await complete(
        client,
        world,
        occurrence,
        status="done",
        answers={"mood": 6, "note": "Walked at lunch with my sister"},
        helpfulness=8,
        effort=4,
        minutes_spent=5,
        reflection="Noticing it helped",
        completed_at="2026-11-22T11:57:00Z",
        time_zone="Europe/Paris",
    )
    assert completed.status_code == 201, completed.text
    completion = completed.json()

    await deliver(world, receiver, now_utc())

    # One delivery: the endpoint asked for completion.created only.
    (received,) = receiver.requests
    assert received.verified_with == [endpoint["secret"]]
    payload = received.payload
    assert set(payload) == {"id", "type", "timestamp", "sequence", "data"}
    assert payload["type"] == "completion.created"
    assert payload["id"] == received.webhook_id and payload["id"].startswith("evt_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", payload["timestamp"])
    assert isinstance(payload["sequence"], int) and payload["sequence"] >= 1
    assert payload["data"] == {
        "completion_id": completion["id"],
        "occurrence_id": occurrence,
        "assignment_id": completion["assignment_id"],
        "client_id": world.a.clients["A1"],
    }
    assert all(AN_ID.match(value) for value in payload["data"].values())
    # What the OpenAPI catalogue promises for this type is what was sent.
    (documented,) = [e for e in CATALOGUE if e.type == "completion.created"]
    assert set(documented.data) == set(payload["data"])
    WebhookPayload.model_validate(payload)
    # Nothing a person wrote, and nothing about them but ids, anywhere in the body.
    text = received.body.decode()
    for private in (
        "Walked at lunch",
        "sister",
        "Noticing it helped",
        "Client A1",
        "mood",
        "note",
        "helpfulness",
        "Europe/Paris",
    ):
        assert private not in text, private
    assert received.headers["content-type"] == "application/json"


async def test_events_are_listed_filtered_and_read_by_their_tenant_only(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    t0 = now_utc()
    created_early = await add_event(world, occurred_at=t0 - timedelta(hours=3))
    completed = await add_event(
        world,
        EventType.completion_created,
        occurred_at=t0 - timedelta(hours=2),
        completion_id="cmp_01jd8x5m2q7c9v3k4t6w8y0z1e",
    )
    created_late = await add_event(world, occurred_at=t0 - timedelta(hours=1))
    theirs = await add_event(world, tenant_id=world.b.id)
    system = world.headers("system_a")

    async def listed(**params: str) -> list[str]:
        response = await client.get("/v1/events", params=params, headers=system)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    assert await listed() == [created_late, completed, created_early]  # newest first
    assert await listed(type="assignment.created") == [created_late, created_early]
    assert await listed(since=_z(t0 - timedelta(hours=2))) == [created_late, completed]
    assert await listed(until=_z(t0 - timedelta(hours=2))) == [created_early]
    assert await listed(
        since=(t0 - timedelta(hours=2, minutes=30)).isoformat(),
        until=(t0 - timedelta(minutes=90)).isoformat(),
    ) == [completed]
    page = await client.get("/v1/events", params={"limit": 2}, headers=system)
    rest = await client.get(
        "/v1/events", params={"cursor": page.json()["next_cursor"]}, headers=system
    )
    assert [e["id"] for e in rest.json()["data"]] == [created_early]
    naive = await client.get("/v1/events", params={"since": "2026-11-22T10:00"}, headers=system)
    assert naive.status_code == 422

    one = await client.get(f"/v1/events/{completed}", headers=system)
    assert one.status_code == 200
    assert one.json() == {
        "id": completed,
        "type": "completion.created",
        "timestamp": _z(t0 - timedelta(hours=2)),
        "sequence": None,  # numbered when it is sent
        "data": {
            "completion_id": "cmp_01jd8x5m2q7c9v3k4t6w8y0z1e",
            "client_id": world.a.clients["A1"],
        },
    }
    other = world.headers("system_b")
    assert (await client.get(f"/v1/events/{completed}", headers=other)).status_code == 404
    assert (await client.get(f"/v1/events/{theirs}", headers=system)).status_code == 404
    listed_b = await client.get("/v1/events", headers=other)
    assert [e["id"] for e in listed_b.json()["data"]] == [theirs]


async def test_an_event_is_redelivered_to_one_endpoint_or_to_all_that_want_it(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    everything = await _endpoint(client, world, receiver, path="/all")
    completions_only = await _endpoint(
        client, world, receiver, path="/completions", event_types=["completion.created"]
    )
    theirs = await create_endpoint(client, world, receiver.url("/b"), role="system_b")
    event_id = await add_event(world)
    system = world.headers("system_a")
    t0 = now_utc()
    freeze(world, t0.isoformat())

    async def redeliver(event: str, headers: dict[str, str], **body: str) -> httpx.Response:
        return await client.post(f"/v1/events/{event}/redeliver", json=body, headers=headers)

    # Not sent yet: it will be, shortly.
    assert (await redeliver(event_id, system)).status_code == 409
    await deliver(world, receiver, t0)
    assert [(r.path, r.webhook_id) for r in receiver.requests] == [("/all", event_id)]

    again = await redeliver(event_id, system)
    assert again.status_code == 200 and again.json() == {"deliveries": 1}
    await deliver(world, receiver, t0 + timedelta(seconds=1))
    named = await redeliver(event_id, system, endpoint_id=completions_only["id"])
    assert named.json() == {"deliveries": 1}
    await deliver(world, receiver, t0 + timedelta(seconds=2))
    # The same message each time: a receiver that dedupes on webhook-id sees one event.
    assert [(r.path, r.webhook_id) for r in receiver.requests] == [
        ("/all", event_id),
        ("/all", event_id),
        ("/completions", event_id),
    ]
    assert all(r.verified_with for r in receiver.requests)
    # Each send is a delivery of its own in the log.
    log = await client.get(f"/v1/webhook-endpoints/{everything['id']}/deliveries", headers=system)
    assert [(d["event_id"], d["state"]) for d in log.json()["data"]] == [
        (event_id, "delivered")
    ] * 2

    other = world.headers("system_b")
    assert (await redeliver(event_id, other)).status_code == 404
    assert (await redeliver(event_id, system, endpoint_id=theirs["id"])).status_code == 404
    assert (await redeliver("evt_01jd8x5m2q7c9v3k4t6w8y0z1f", system)).status_code == 404


async def test_failed_deliveries_in_a_range_are_sent_again_once(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    t0 = t = now_utc()
    freeze(world, t0.isoformat())
    in_range = [await add_event(world), await add_event(world)]
    earlier = await add_event(world, occurred_at=t0 - timedelta(days=2))
    receiver.default = (503, {}, b"down for maintenance")
    await deliver(world, receiver, t)
    for attempt in range(1, len(RETRY_DELAYS) + 1):
        t += RETRY_DELAYS[attempt - 1] * (1 + JITTER) + timedelta(seconds=1)
        await deliver(world, receiver, t)
    assert len(receiver.requests) == 3 * 8
    receiver.requests.clear()
    receiver.default = (204, {}, b"")

    system = world.headers("system_a")
    window = {"since": _z(t0 - timedelta(hours=1)), "until": _z(t0 + timedelta(hours=1))}
    replay = await client.post("/v1/events/redeliver", json=window, headers=system)
    assert replay.status_code == 200 and replay.json() == {"deliveries": 2}
    # Asking twice does not send twice: those are on their way already...
    twice = await client.post("/v1/events/redeliver", json=window, headers=system)
    assert twice.json() == {"deliveries": 0}
    await deliver(world, receiver, t + timedelta(minutes=1))
    assert sorted(receiver.ids()) == sorted(in_range) and earlier not in receiver.ids()
    # ...nor once they got there.
    thrice = await client.post("/v1/events/redeliver", json=window, headers=system)
    assert thrice.json() == {"deliveries": 0}

    # Another tenant's range holds none of ours; another tenant's endpoint is not ours to name.
    other = world.headers("system_b")
    assert (await client.post("/v1/events/redeliver", json=window, headers=other)).json() == {
        "deliveries": 0
    }
    named = await client.post(
        "/v1/events/redeliver", json={**window, "endpoint_id": endpoint["id"]}, headers=other
    )
    assert named.status_code == 404


async def test_a_test_event_goes_to_that_endpoint_only(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    tested = await _endpoint(client, world, receiver, path="/tested")
    await _endpoint(client, world, receiver, path="/other")
    system = world.headers("system_a")

    sent = await client.post(f"/v1/webhook-endpoints/{tested['id']}/test", headers=system)
    assert sent.status_code == 202, sent.text
    assert sent.json()["type"] == "webhook.test"
    assert sent.json()["data"] == {"endpoint_id": tested["id"]}
    await deliver(world, receiver, now_utc())

    (received,) = receiver.requests
    assert received.path == "/tested" and received.verified_with == [tested["secret"]]
    assert received.payload["type"] == "webhook.test"
    assert received.webhook_id == sent.json()["id"]
    log = await client.get(f"/v1/webhook-endpoints/{tested['id']}/deliveries", headers=system)
    assert [(d["event_type"], d["state"]) for d in log.json()["data"]] == [
        ("webhook.test", "delivered")
    ]
    # A test event is for the vendor's eyes in its delivery log, not in the event stream.
    assert (await client.get("/v1/events", headers=system)).json()["data"] == []


async def test_events_and_attempts_older_than_30_days_are_pruned(
    client: httpx.AsyncClient, world: World, receiver: Receiver
) -> None:
    endpoint = await _endpoint(client, world, receiver)
    database = world.app.state.database
    system = world.headers("system_a")
    t0 = now_utc()
    old = await add_event(world)
    await deliver(world, receiver, t0)
    young = await add_event(world)
    await deliver(world, receiver, t0 + timedelta(days=20))
    assert receiver.ids() == [old, young]

    # 31 days on: the old event goes with its delivery and attempt; the young one stays.
    later = t0 + timedelta(days=31)
    await run_once(database, later, 50)
    assert (await client.get(f"/v1/events/{old}", headers=system)).status_code == 404
    assert (await client.get(f"/v1/events/{young}", headers=system)).status_code == 200
    log = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=system)
    assert [(d["event_id"], len(d["attempts"])) for d in log.json()["data"]] == [(young, 1)]
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookAttempt)) == 1

    # An event is never pruned unsent, however old: a worker that was stopped for weeks
    # sends what piled up first. Nor while a delivery of it is still pending.
    unsent = await add_event(world, occurred_at=t0 - timedelta(days=40))
    await prune_old(database, later, 50)
    assert await event_row(world, unsent) is not None
    receiver.default = (503, {}, b"")
    await deliver(world, receiver, later)
    await prune_old(database, later + timedelta(days=31), 50)
    assert await event_row(world, unsent) is not None
    assert receiver.ids()[-1] == unsent


def test_the_openapi_document_describes_every_event_type_with_a_valid_example() -> None:
    document = create_app().openapi()
    webhooks = document["webhooks"]
    assert set(webhooks) == {t.value for t in EventType} | {"webhook.test"}
    for name, item in webhooks.items():
        operation = item["post"]
        assert operation["description"], name
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        signed = {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert headers == signed | {"traceparent"}, name
        assert {"200", "410", "default"} <= set(operation["responses"]), name
        media = operation["requestBody"]["content"]["application/json"]
        assert media["schema"] == {"$ref": "#/components/schemas/WebhookPayload"}
        (example,) = media["examples"].values()
        payload = WebhookPayload.model_validate(example["value"])
        assert payload.type == name and payload.id.startswith("evt_")
        assert all(AN_ID.match(v) for k, v in payload.data.items() if k.endswith("_id")), name
