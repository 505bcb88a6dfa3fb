"""A tenant's own identity provider: tokens signed by another JOSE library (joserfc), keys
served by a real JWKS host on loopback, and key rotation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt as jose_rfc
from joserfc.jwk import ECKey, RSAKey

from app.main import create_app
from tests.conftest import client_for
from tests.jwks_server import JwksHost, serve_jwks
from tests.world import World, build_world

ISSUER = "https://id.vendor.example/"


@pytest.fixture
def jwks_host() -> Iterator[JwksHost]:
    with serve_jwks() as host:
        yield host


@pytest.fixture
async def idp_app(make_settings, jwks_host: JwksHost) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    # The loopback JWKS host is allowed explicitly, as a tenant's on-premise IdP would be.
    application = create_app(
        make_settings(
            outbound_allow_http=True,
            outbound_allowed_hosts=f"127.0.0.1:{jwks_host.port}",
            idp_jwks_min_refetch_seconds=0,
        )
    )
    yield application
    await application.state.database.dispose()


@pytest.fixture
async def idp(idp_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(idp_app) as http:
        yield http


@pytest.fixture
async def idp_world(idp_app: FastAPI) -> World:
    return await build_world(idp_app)


async def trust(http: httpx.AsyncClient, world: World, host: JwksHost) -> httpx.Response:
    return await http.put(
        "/v1/identity-provider",
        json={"issuer": ISSUER, "jwks_url": host.url, "audience": "homework-api"},
        headers=world.headers("system_a"),
    )


def idp_token(key: RSAKey | ECKey, alg: str, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": "homework-api",
        "sub": "A-clt-1",
        "homework_kind": "client",
        "scope": "client/clients.r",
        "iat": now,
        "exp": now + 300,
        "jti": "idp-1",
    }
    claims.update(overrides)
    header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    return jose_rfc.encode(header, claims, key)


async def read_client(http: httpx.AsyncClient, world: World, token: str) -> httpx.Response:
    return await http.get(
        f"/v1/clients/{world.a.clients['A1']}", headers={"Authorization": f"Bearer {token}"}
    )


async def test_tokens_from_the_tenants_idp_are_accepted(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost
) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-2026-1"})
    jwks_host.keys = [key.as_dict(private=False)]
    assert (await trust(idp, idp_world, jwks_host)).status_code == 200

    response = await read_client(idp, idp_world, idp_token(key, "RS256"))
    assert response.status_code == 200, response.text
    assert response.json()["external_id"] == "A-clt-1"


async def test_ec_keys_work_and_the_subject_is_bound_to_its_tenant(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost
) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    jwks_host.keys = [key.as_dict(private=False)]
    await trust(idp, idp_world, jwks_host)
    # Tenant B's client does not exist in tenant A, whose IdP this is.
    stranger = await read_client(idp, idp_world, idp_token(key, "ES256", sub="B-clt-1"))
    assert stranger.status_code == 401
    # The IdP's client A2 can exist, but cannot read client A1.
    other = await read_client(idp, idp_world, idp_token(key, "ES256", sub="A-clt-2"))
    assert other.status_code == 404


async def test_key_rotation_accepts_new_and_refuses_dropped_keys(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost
) -> None:
    old = RSAKey.generate_key(2048, parameters={"kid": "old"})
    new = RSAKey.generate_key(2048, parameters={"kid": "new"})
    jwks_host.keys = [old.as_dict(private=False)]
    await trust(idp, idp_world, jwks_host)
    assert (await read_client(idp, idp_world, idp_token(old, "RS256"))).status_code == 200

    # The IdP rotates: publishes the new key and drops the old one.
    jwks_host.keys = [new.as_dict(private=False)]
    assert (await read_client(idp, idp_world, idp_token(new, "RS256"))).status_code == 200
    # The refetch that the new kid caused replaced the whole key set: "old" is gone at once.
    dropped = await read_client(idp, idp_world, idp_token(old, "RS256"))
    assert dropped.status_code == 401


async def test_unknown_kids_refetch_at_most_once_a_minute(
    make_settings, jwks_host: JwksHost
) -> None:  # type: ignore[no-untyped-def]
    application = create_app(
        make_settings(
            outbound_allow_http=True,
            outbound_allowed_hosts=f"127.0.0.1:{jwks_host.port}",
            idp_jwks_min_refetch_seconds=60,
        )
    )
    world = await build_world(application)
    key = RSAKey.generate_key(2048, parameters={"kid": "real"})
    jwks_host.keys = [key.as_dict(private=False)]
    async with client_for(application) as http:
        await trust(http, world, jwks_host)
        assert (await read_client(http, world, idp_token(key, "RS256"))).status_code == 200
        hits = jwks_host.hits
        for n in range(20):
            forged = RSAKey.generate_key(2048, parameters={"kid": f"forged-{n}"})
            response = await read_client(http, world, idp_token(forged, "RS256"))
            assert response.status_code == 401
    await application.state.database.dispose()
    assert jwks_host.hits - hits <= 1


async def test_idp_tokens_are_checked_like_ours(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost
) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k"})
    jwks_host.keys = [key.as_dict(private=False)]
    await trust(idp, idp_world, jwks_host)
    now = int(time.time())
    for bad in (
        idp_token(key, "RS256", aud="other"),
        idp_token(key, "RS256", exp=now - 120, iat=now - 900),
        idp_token(key, "RS256", homework_kind="system"),
        idp_token(key, "RS256", homework_kind="admin"),
    ):
        assert (await read_client(idp, idp_world, bad)).status_code == 401


async def test_idp_cannot_point_inside_our_network(client: httpx.AsyncClient, world: World) -> None:
    for url in (
        "https://127.0.0.1/jwks",
        "https://169.254.169.254/latest/meta-data",
        "http://id.vendor.example/jwks",
        "https://10.0.0.1/jwks",
    ):
        response = await client.put(
            "/v1/identity-provider",
            json={"issuer": ISSUER, "jwks_url": url, "audience": "homework-api"},
            headers=world.headers("system_a"),
        )
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["pointer"] == "/jwks_url"


async def test_one_issuer_one_tenant(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost
) -> None:
    assert (await trust(idp, idp_world, jwks_host)).status_code == 200
    taken = await idp.put(
        "/v1/identity-provider",
        json={"issuer": ISSUER, "jwks_url": jwks_host.url, "audience": "x"},
        headers=idp_world.headers("system_b"),
    )
    assert taken.status_code == 422
    got = await idp.get("/v1/identity-provider", headers=idp_world.headers("system_a"))
    assert got.json()["issuer"] == ISSUER
    assert (
        await idp.delete("/v1/identity-provider", headers=idp_world.headers("system_a"))
    ).status_code == 204
    assert (
        await idp.get("/v1/identity-provider", headers=idp_world.headers("system_a"))
    ).status_code == 404


async def test_an_idp_cannot_grant_more_than_the_role_may_hold(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost
) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k"})
    jwks_host.keys = [key.as_dict(private=False)]
    await trust(idp, idp_world, jwks_host)
    greedy = idp_token(
        key,
        "RS256",
        sub="A-cln-1",
        homework_kind="clinician",
        scope="clinician/clients.cruds clinician/audit.rs clinician/identity.cruds",
    )
    headers = {"Authorization": f"Bearer {greedy}"}
    client_a1 = idp_world.a.clients["A1"]
    assert (await idp.get(f"/v1/clients/{client_a1}", headers=headers)).status_code == 200
    assert (await idp.delete(f"/v1/clients/{client_a1}", headers=headers)).status_code == 403
    assert (await idp.get("/v1/audit-events", headers=headers)).status_code == 403
    assert (await idp.get("/v1/identity-provider", headers=headers)).status_code == 403
