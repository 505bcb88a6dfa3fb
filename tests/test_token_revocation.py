"""Token revocation (RFC 7009) and introspection (RFC 7662): a revoked token is refused from the
next request on, in this API process at once and in every other within the refresh window."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from app.core.revocations import REFRESH_SECONDS
from app.core.scopes import Context
from app.main import create_app
from tests.conftest import client_for
from tests.revoked import assert_refused
from tests.world import World

REVOKED = "the token has been revoked"


def _as(world: World, tenant: str = "a") -> tuple[str, str]:
    owner = world.a if tenant == "a" else world.b
    return owner.client_id, owner.client_secret


async def _introspect(http: httpx.AsyncClient, world: World, token: str, tenant: str = "a") -> dict:
    response = await http.post("/oauth/introspect", data={"token": token}, auth=_as(world, tenant))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_introspection_describes_an_active_token(
    client: httpx.AsyncClient, world: World
) -> None:
    answer = await _introspect(client, world, world.tokens["client_a1"])
    assert answer["active"] is True
    assert answer["sub"] == world.a.clients["A1"]
    assert answer["subject_kind"] == "client"
    assert answer["client_id"] == world.a.client_id
    assert answer["tenant_id"] == world.a.id
    assert answer["token_type"] == "Bearer"
    assert answer["exp"] > answer["iat"]
    assert "client/assignments.rus" in answer["scope"]


async def test_a_revoked_token_is_refused_and_inactive(
    client: httpx.AsyncClient, world: World
) -> None:
    token = world.tokens["clinician_a1"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/templates", headers=headers)).status_code == 200

    revoked = await client.post("/oauth/revoke", data={"token": token}, auth=_as(world))
    assert revoked.status_code == 200
    assert revoked.content == b""

    for path in ("/v1/templates", "/v1/clients", "/v1/me/homework"):
        assert_refused(await client.get(path, headers=headers), REVOKED)
    assert await _introspect(client, world, token) == {"active": False}
    # Revoking again is no error; the person's other tokens still work.
    again = await client.post("/oauth/revoke", data={"token": token}, auth=_as(world))
    assert again.status_code == 200
    other = world.token_for(world.a, Context.clinician, world.a.clinicians["A1"])
    response = await client.get("/v1/templates", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 200


async def test_another_tenants_token_can_be_neither_revoked_nor_read(
    client: httpx.AsyncClient, world: World
) -> None:
    theirs = world.tokens["system_b"]
    assert await _introspect(client, world, theirs) == {"active": False}
    response = await client.post("/oauth/revoke", data={"token": theirs}, auth=_as(world))
    assert response.status_code == 200  # as for any token it may not touch
    still = await client.get("/v1/clients", headers=world.headers("system_b"))
    assert still.status_code == 200
    # Its own tenant's client sees it active.
    assert (await _introspect(client, world, theirs, tenant="b"))["active"] is True


async def test_expired_and_garbage_tokens_are_inactive(
    client: httpx.AsyncClient, world: World
) -> None:
    for token in (world.tokens["expired"], "not-a-token", "a.b.c"):
        assert await _introspect(client, world, token) == {"active": False}
        response = await client.post("/oauth/revoke", data={"token": token}, auth=_as(world))
        assert response.status_code == 200


async def test_the_endpoints_authenticate_the_client(
    client: httpx.AsyncClient, world: World
) -> None:
    token = world.tokens["client_a1"]
    for path in ("/oauth/revoke", "/oauth/introspect"):
        wrong = await client.post(path, data={"token": token}, auth=(world.a.client_id, "nope"))
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"
        assert wrong.headers["www-authenticate"].startswith("Basic")
        anonymous = await client.post(path, data={"token": token})
        assert anonymous.status_code == 401
        missing = await client.post(path, data={}, auth=_as(world))
        assert missing.status_code == 400
        assert missing.json()["error"] == "invalid_request"
        # client_secret_post, as at the token endpoint
        posted = await client.post(
            path,
            data={
                "token": token,
                "client_id": world.a.client_id,
                "client_secret": world.a.client_secret,
            },
        )
        assert posted.status_code == 200
    # The wrong secret revoked nothing; the right one (in the form) did.
    response = await client.get("/v1/me/homework", headers=world.headers("client_a1"))
    assert_refused(response, REVOKED)


async def test_the_metadata_advertises_both_endpoints(client: httpx.AsyncClient) -> None:
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    issuer = metadata["issuer"]
    assert metadata["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert metadata["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    methods = ["client_secret_basic", "client_secret_post"]
    assert metadata["revocation_endpoint_auth_methods_supported"] == methods
    assert metadata["introspection_endpoint_auth_methods_supported"] == methods


async def test_a_revocation_reaches_another_api_process_within_the_window(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, world: World
) -> None:
    """Two apps on one database, as two API processes: revoked through one, the other refuses
    within REFRESH_SECONDS (it reloads the revocations; nothing tells it)."""
    other_app = create_app(settings)
    token = world.tokens["client_a1"]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with client_for(other_app) as other:
            # The other process has its copy fresh, and the token verified and cached.
            assert (await other.get("/v1/me/homework", headers=headers)).status_code == 200
            revoked = await client.post("/oauth/revoke", data={"token": token}, auth=_as(world))
            assert revoked.status_code == 200
            started = time.monotonic()
            while (
                response := await other.get("/v1/me/homework", headers=headers)
            ).status_code == 200:
                assert time.monotonic() - started < REFRESH_SECONDS + 1.0, "never refused"
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
            assert_refused(response, REVOKED)
            print(f"revocation reached the second process after {elapsed:.2f} s")
            assert elapsed <= REFRESH_SECONDS + 0.5
            # The process that revoked refused it at once.
            assert_refused(await client.get("/v1/me/homework", headers=headers), REVOKED)
    finally:
        await other_app.state.database.dispose()
