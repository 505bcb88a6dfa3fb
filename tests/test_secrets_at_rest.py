"""Webhook signing secrets and the answers that show them, sealed at rest on both databases:
read with raw SQL the columns hold no secret, deliveries still verify with `standardwebhooks`,
a ciphertext moved elsewhere does not open, an Idempotency-Key replay still shows the secret,
and `homework keys rotate-data` moves everything to a new first key (idempotently), sealing
what was stored in plaintext before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from sqlalchemy import text

from app.cli import main
from app.core import data_keys
from app.core.config import Settings, get_settings
from app.core.data_keys import DataKeys, Unsealable
from app.services.webhooks import sealed_secrets
from app.worker.loop import run_once
from tests.conftest import client_for
from tests.webhook_receiver import Receiver, add_event, app_for, now_utc
from tests.world import World

OLD, NEW = data_keys.generate_entry(), data_keys.generate_entry()


def _ring(*entries: dict[str, str]) -> str:
    return json.dumps(list(entries))


def _settings(make_settings: Any, receiver: Receiver, *entries: dict[str, str]) -> Settings:
    settings: Settings = make_settings(
        outbound_allow_http=True,
        outbound_allowed_hosts=f"127.0.0.1:{receiver.port}",
        data_keys=_ring(*entries),
    )
    return settings


@pytest.fixture
async def app(make_settings: Any, receiver: Receiver) -> AsyncIterator[FastAPI]:
    async with app_for(_settings(make_settings, receiver, OLD)) as application:
        yield application


async def _create(
    http: httpx.AsyncClient, world: World, receiver: Receiver, path: str, key: str | None = None
) -> httpx.Response:
    headers = world.headers("system_a") | ({"Idempotency-Key": key} if key else {})
    created = await http.post(
        "/v1/webhook-endpoints", json={"url": receiver.url(path)}, headers=headers
    )
    assert created.status_code == 201, created.text
    return created


async def _rotate(http: httpx.AsyncClient, world: World, endpoint_id: str, key: str) -> str:
    rotated = await http.post(
        f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        json={"overlap_hours": 24},
        headers=world.headers("system_a") | {"Idempotency-Key": key},
    )
    assert rotated.status_code == 200, rotated.text
    secret: str = rotated.json()["secret"]
    return secret


async def _raw(app: FastAPI, sql: str, **params: Any) -> list[Any]:
    async with app.state.database.engine.begin() as connection:
        result = await connection.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def _stored_secrets(app: FastAPI, endpoint_id: str) -> tuple[str, str | None]:
    ((secret, previous),) = await _raw(
        app, "SELECT secret, previous_secret FROM webhook_endpoints WHERE id = :id", id=endpoint_id
    )
    return secret, previous


async def _stored_bodies(app: FastAPI) -> list[bytes]:
    rows = await _raw(app, "SELECT response_body FROM idempotency_keys ORDER BY key")
    return [bytes(body) for (body,) in rows]


async def _deliver(app: FastAPI, receiver: Receiver, world: World) -> None:
    await add_event(world)
    now = now_utc()
    receiver.now = now
    await run_once(app.state.database, now, 50)


def _kid_of(stored: str | bytes | None) -> str:
    assert stored is not None
    return data_keys.sealed_kid(stored.decode() if isinstance(stored, bytes) else stored)


def _plaintext_in(stored: str | bytes, *secrets: str) -> bool:
    raw = stored.encode() if isinstance(stored, str) else stored
    return any(
        s.encode() in raw or s.removeprefix("whsec_").encode() in raw for s in secrets
    ) or raw.startswith(b"whsec_")


async def test_secrets_are_sealed_in_the_database_and_deliveries_still_verify(
    client: httpx.AsyncClient, app: FastAPI, world: World, receiver: Receiver
) -> None:
    endpoint = (await _create(client, world, receiver, "/hook")).json()
    first = endpoint["secret"]
    secret, previous = await _stored_secrets(app, endpoint["id"])
    assert secret.startswith(f"v1.{OLD['kid']}.") and previous is None
    assert not _plaintext_in(secret, first) and len(secret) <= 100

    second = await _rotate(client, world, endpoint["id"], "rotate-1")
    secret, previous = await _stored_secrets(app, endpoint["id"])
    assert previous is not None and previous.startswith(f"v1.{OLD['kid']}.")
    assert not _plaintext_in(secret, first, second) and not _plaintext_in(previous, first, second)

    receiver.secrets = [first, second]
    await _deliver(app, receiver, world)
    (received,) = receiver.requests
    assert received.verified_with == [first, second] and not received.errors


async def test_a_sealed_secret_moved_to_another_row_or_column_does_not_open(
    client: httpx.AsyncClient, app: FastAPI, world: World, receiver: Receiver
) -> None:
    a = (await _create(client, world, receiver, "/a")).json()
    b = (await _create(client, world, receiver, "/b")).json()
    sealed_a, _ = await _stored_secrets(app, a["id"])
    keys = DataKeys.from_settings(app.state.settings)
    for endpoint_id, column in ((b["id"], "secret"), (a["id"], "previous_secret")):
        with pytest.raises(Unsealable, match="moved or altered"):
            sealed_secrets.unseal(keys, endpoint_id, column, sealed_a)

    # B's row given A's ciphertext: B's deliveries are held back, never signed with A's secret,
    # and A's go on.
    await _raw(
        app, "UPDATE webhook_endpoints SET secret = :s WHERE id = :id", s=sealed_a, id=b["id"]
    )
    receiver.secrets = [a["secret"], b["secret"]]
    await _deliver(app, receiver, world)
    assert [(r.path, r.verified_with) for r in receiver.requests] == [("/a", [a["secret"]])]


async def test_an_idempotent_replay_shows_the_secret_the_first_answer_showed(
    client: httpx.AsyncClient, app: FastAPI, world: World, receiver: Receiver
) -> None:
    first = await _create(client, world, receiver, "/hook", key="create-1")
    replayed = await _create(client, world, receiver, "/hook", key="create-1")
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == first.json() and replayed.json()["secret"].startswith("whsec_")
    (body,) = await _stored_bodies(app)
    assert body.startswith(f"v1.{OLD['kid']}.".encode())
    assert (
        not _plaintext_in(body, first.json()["secret"]) and first.json()["id"].encode() not in body
    )


async def test_rotate_data_reseals_under_the_new_first_key_once_and_old_ones_open_until_then(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    receiver: Receiver,
    make_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await _create(client, world, receiver, "/hook", key="create-1")
    endpoint_id, first = created.json()["id"], created.json()["secret"]
    second = await _rotate(client, world, endpoint_id, "rotate-1")
    receiver.secrets = [first, second]

    async with app_for(_settings(make_settings, receiver, NEW, OLD)) as both:
        # The new key first everywhere: what the old key sealed still opens and signs.
        await _still_works(both, world, receiver, first, second)

        rotated = await _rotate_data(monkeypatch, both.state.settings, batch_size=1)
        assert rotated == {
            "webhook_endpoints.secret": {"re_sealed": 1},
            "webhook_endpoints.previous_secret": {"re_sealed": 1},
            "idempotency_keys.response_body": {"re_sealed": 2},
        }
        stored = [*await _stored_secrets(both, endpoint_id), *await _stored_bodies(both)]
        assert [_kid_of(s) for s in stored] == [NEW["kid"]] * 4
        again = await _rotate_data(monkeypatch, both.state.settings, batch_size=1)
        assert again["webhook_endpoints.secret"] == {"current": 1}
        assert again["idempotency_keys.response_body"] == {"current": 2}

    # The old key retired: everything still opens.
    async with app_for(_settings(make_settings, receiver, NEW)) as new_only:
        await _still_works(new_only, world, receiver, first, second)


async def _still_works(
    app: FastAPI, world: World, receiver: Receiver, first: str, second: str
) -> None:
    """The replay of "create-1" shows its secret; a delivery verifies with both secrets."""
    async with client_for(app) as http:
        replayed = await _create(http, world, receiver, "/hook", key="create-1")
    assert replayed.json()["secret"] == first
    await _deliver(app, receiver, world)
    assert receiver.requests[-1].verified_with == [first, second]


async def test_plaintext_from_before_sealing_still_works_until_rotate_data_seals_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await _create(client, world, receiver, "/hook", key="create-1")
    endpoint_id, secret = created.json()["id"], created.json()["secret"]
    # As an older version stored them: the secret and the answer in the clear.
    await _raw(
        app, "UPDATE webhook_endpoints SET secret = :s WHERE id = :id", s=secret, id=endpoint_id
    )
    await _raw(app, "UPDATE idempotency_keys SET response_body = :b", b=created.content)
    receiver.secrets = [secret]
    await _deliver(app, receiver, world)
    assert receiver.requests[-1].verified_with == [secret]
    assert (
        await _create(client, world, receiver, "/hook", key="create-1")
    ).json() == created.json()

    counts = await _rotate_data(monkeypatch, app.state.settings, batch_size=50)
    assert counts["webhook_endpoints.secret"] == {"sealed_plaintext": 1}
    assert counts["idempotency_keys.response_body"] == {"sealed_plaintext": 1}
    stored, _ = await _stored_secrets(app, endpoint_id)
    (body,) = await _stored_bodies(app)
    assert not _plaintext_in(stored, secret) and not _plaintext_in(body, secret)
    await _deliver(app, receiver, world)
    assert receiver.requests[-1].verified_with == [secret]
    assert (
        await _create(client, world, receiver, "/hook", key="create-1")
    ).json() == created.json()


async def test_rotate_data_exits_1_while_a_value_opens_with_none_of_the_keys(
    client: httpx.AsyncClient,
    world: World,
    receiver: Receiver,
    make_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _create(client, world, receiver, "/hook")
    without_old = _settings(make_settings, receiver, NEW)
    with pytest.raises(AssertionError, match="exit 1"):
        await _rotate_data(monkeypatch, without_old, batch_size=10)


async def _rotate_data(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, batch_size: int
) -> dict[str, dict[str, int]]:
    """`homework keys rotate-data` itself, on this test's database and keys."""
    assert settings.data_keys is not None
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HOMEWORK_DATA_KEYS", settings.data_keys.get_secret_value())
    get_settings.cache_clear()
    try:
        done = await asyncio.to_thread(
            CliRunner().invoke, main, ["keys", "rotate-data", "--batch-size", str(batch_size)]
        )
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, f"exit {done.exit_code}: {done.output}"
    counts: dict[str, dict[str, int]] = json.loads(done.output)
    return counts
