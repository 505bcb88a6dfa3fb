"""The tenant's OAuth clients over their life: listed, described, a secret rotated with an
overlap, a client revoked (its secrets and every token it obtained refused), all audited."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from app.core.config import Settings
from app.core.db import Database
from app.core.revocations import REFRESH_SECONDS
from app.core.scopes import ALL_SCOPES
from app.main import create_app
from app.models import OAuthClient
from app.models.base import utcnow
from app.services import tenants
from tests.conftest import client_for
from tests.revoked import assert_refused
from tests.world import World

CLIENTS = "/v1/identity/clients"
REVOKED = "the OAuth client that obtained the token has been revoked"


async def _second_client(world: World) -> tuple[str, str]:
    database: Database = world.app.state.database
    async with database.sessionmaker() as session, session.begin():
        issued = await tenants.create_oauth_client(session, world.a.id, "reporting", ALL_SCOPES)
    return issued.client_id, issued.client_secret


async def _token(
    http: httpx.AsyncClient, client_id: str, secret: str, **form: str
) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=(client_id, secret),
    )


async def _exchange(http: httpx.AsyncClient, client_id: str, secret: str, person: str) -> str:
    response = await _token(
        http,
        client_id,
        secret,
        grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token=person,
        subject_token_type="urn:homework:token-type:client-id",
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_list_and_describe_only_the_tenants_own(
    client: httpx.AsyncClient, world: World
) -> None:
    second, _ = await _second_client(world)
    listed = await client.get(CLIENTS, headers=world.headers("system_a"))
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [world.a.client_id, second]
    assert not [v for c in listed.json() for v in c.values() if str(v).startswith("hws_")]
    one = await client.get(f"{CLIENTS}/{second}", headers=world.headers("system_a"))
    assert one.json()["name"] == "reporting"
    assert one.json()["revoked_at"] is None
    theirs = await client.get(f"{CLIENTS}/{world.b.client_id}", headers=world.headers("system_a"))
    assert theirs.status_code == 404


async def test_rotation_keeps_the_old_secret_for_the_overlap_only(
    client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, old = await _second_client(world)
    caplog.set_level(logging.DEBUG)
    rotated = await client.post(
        f"{CLIENTS}/{client_id}/rotate",
        json={"old_secret_expires_in": 3600},
        headers=world.headers("system_a"),
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    assert new.startswith("hws_") and new != old
    assert all(new not in record.getMessage() for record in caplog.records)
    assert rotated.json()["previous_secret_expires_at"] is not None

    # The overlap: both work.
    assert (await _token(client, client_id, old)).status_code == 200
    assert (await _token(client, client_id, new)).status_code == 200
    # The overlap ends (as an hour later): the old one stops, the new one goes on.
    database: Database = world.app.state.database
    async with database.sessionmaker() as session, session.begin():
        await session.execute(
            update(OAuthClient)
            .where(OAuthClient.id == client_id)
            .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
    refused = await _token(client, client_id, old)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert (await _token(client, client_id, new)).status_code == 200


async def test_a_rotation_without_overlap_and_a_second_rotation_end_the_old_secret(
    client: httpx.AsyncClient, world: World
) -> None:
    client_id, first = await _second_client(world)
    url, system = f"{CLIENTS}/{client_id}/rotate", world.headers("system_a")
    second = (await client.post(url, json={}, headers=system)).json()["client_secret"]
    third = (await client.post(url, json={}, headers=system)).json()["client_secret"]
    assert (await _token(client, client_id, first)).status_code == 401
    assert (await _token(client, client_id, second)).status_code == 200  # the overlap's
    fourth = await client.post(url, json={"old_secret_expires_in": 0}, headers=system)
    assert fourth.json()["previous_secret_expires_at"] is None
    assert (await _token(client, client_id, third)).status_code == 401
    assert (await _token(client, client_id, second)).status_code == 401
    assert (await _token(client, client_id, fourth.json()["client_secret"])).status_code == 200
    too_long = await client.post(url, json={"old_secret_expires_in": 8 * 86400}, headers=system)
    assert too_long.status_code == 422


async def test_a_revoked_client_and_its_tokens_are_refused_in_every_process(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, world: World
) -> None:
    client_id, secret = await _second_client(world)
    system = _bearer(await _token(client, client_id, secret))
    exchanged = await _exchange(client, client_id, secret, world.a.clients["A1"])
    person = {"Authorization": f"Bearer {exchanged}"}
    other_app = create_app(settings)
    try:
        async with client_for(other_app) as other:
            assert (await other.get("/v1/clients", headers=system)).status_code == 200
            assert (await other.get("/v1/me/homework", headers=person)).status_code == 200

            revoked = await client.post(
                f"{CLIENTS}/{client_id}/revoke", headers=world.headers("system_a")
            )
            assert revoked.status_code == 200, revoked.text
            assert revoked.json()["revoked_at"] is not None

            # This process: at once.
            assert_refused(await client.get("/v1/clients", headers=system), REVOKED)
            assert_refused(await client.get("/v1/me/homework", headers=person), REVOKED)
            assert (await _token(client, client_id, secret)).status_code == 401
            # The other: within the window.
            started = time.monotonic()
            while (await other.get("/v1/clients", headers=system)).status_code == 200:
                assert time.monotonic() - started < REFRESH_SECONDS + 0.5
                await asyncio.sleep(0.02)
            assert_refused(await other.get("/v1/me/homework", headers=person), REVOKED)
            assert (await _token(other, client_id, secret)).status_code == 401
    finally:
        await other_app.state.database.dispose()

    # The tenant's other client is untouched; a revoked client cannot be rotated.
    assert (await client.get("/v1/clients", headers=world.headers("system_a"))).status_code == 200
    again = await client.post(
        f"{CLIENTS}/{client_id}/rotate", json={}, headers=world.headers("system_a")
    )
    assert again.status_code == 409


async def test_every_call_is_audited_by_id(client: httpx.AsyncClient, world: World) -> None:
    client_id, _ = await _second_client(world)
    system = world.headers("system_a")
    await client.get(CLIENTS, headers=system)
    await client.get(f"{CLIENTS}/{client_id}", headers=system)
    await client.post(f"{CLIENTS}/{client_id}/rotate", json={}, headers=system)
    await client.post(f"{CLIENTS}/{client_id}/revoke", headers=system)
    trail = await client.get("/v1/audit-events", headers=system)
    events = [
        (e["action"], e["resource_id"])
        for e in trail.json()["data"]
        if e["resource_type"] == "oauth_client"
    ]
    assert events[:4] == [
        ("delete", client_id),
        ("update", client_id),
        ("read", client_id),
        ("list", client_id),
    ]
