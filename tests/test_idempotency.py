"""Idempotency-Key on POST: one effect per key, the same answer on every retry."""

from __future__ import annotations

import asyncio

import httpx

from tests.world import World


async def _create(
    client: httpx.AsyncClient, world: World, key: str, external_id: str, role: str = "system_a"
) -> httpx.Response:
    return await client.post(
        "/v1/clinicians",
        json={"external_id": external_id},
        headers={**world.headers(role), "Idempotency-Key": key},
    )


async def _count(client: httpx.AsyncClient, world: World, external_id: str) -> int:
    listed = await client.get(
        "/v1/clinicians", params={"external_id": external_id}, headers=world.headers("system_a")
    )
    return len(listed.json()["data"])


async def test_a_retry_creates_one_and_returns_the_same_body(
    client: httpx.AsyncClient, world: World
) -> None:
    first = await _create(client, world, "key-1", "dr-idem")
    again = await _create(client, world, "key-1", "dr-idem")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _count(client, world, "dr-idem") == 1


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, world: World
) -> None:
    await _create(client, world, "key-2", "dr-one")
    other = await _create(client, world, "key-2", "dr-two")
    assert other.status_code == 422
    assert other.json()["type"] == "urn:homework:problem:idempotency-key-reused"
    assert await _count(client, world, "dr-two") == 0


async def test_keys_belong_to_their_caller(client: httpx.AsyncClient, world: World) -> None:
    mine = await _create(client, world, "shared-key", "dr-a")
    theirs = await client.post(
        "/v1/clinicians",
        json={"external_id": "dr-a"},
        headers={**world.headers("system_b"), "Idempotency-Key": "shared-key"},
    )
    assert mine.status_code == theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


async def test_a_failed_request_does_not_keep_the_key(
    client: httpx.AsyncClient, world: World
) -> None:
    conflict = await _create(client, world, "key-3", "A-cln-1")  # already exists: 409
    assert conflict.status_code == 409
    retried = await _create(client, world, "key-3", "A-cln-1")
    assert retried.status_code == 409
    assert "idempotent-replayed" not in retried.headers


async def test_a_request_still_in_flight_answers_409(
    app, world: World, postgres_only: None
) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL only: SQLite has one writer, so there the twin waits for the first request's
    # lock and, past busy_timeout, gets 503 (retry) rather than 409.
    from app.core import idempotency
    from tests.conftest import client_for

    release = asyncio.Event()
    entered = asyncio.Event()
    original = idempotency.store_response

    async def slow_store(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        await release.wait()
        await original(*args, **kwargs)

    idempotency.store_response = slow_store  # type: ignore[assignment]
    try:
        async with client_for(app) as http:
            first = asyncio.create_task(_create(http, world, "key-4", "dr-slow"))
            await entered.wait()
            twin = await _create(http, world, "key-4", "dr-slow")
            release.set()
            done = await first
    finally:
        idempotency.store_response = original  # type: ignore[assignment]
    assert twin.status_code == 409
    # While the first request runs its heartbeat renews the key's lease: at most LEASE ahead.
    assert 1 <= int(twin.headers["retry-after"]) <= idempotency.LEASE.total_seconds()
    assert done.status_code == 201
