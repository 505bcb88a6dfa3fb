"""The token endpoint: client credentials, token exchange, and RFC 6749 errors."""

from __future__ import annotations

import base64

import httpx
from jose import jwt

from app.core.scopes import ROLE_SCOPES, Context, ScopeSet
from tests.world import World, get_token

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def claims(token: str) -> dict[str, object]:
    return jwt.get_unverified_claims(token)


async def test_client_credentials_gives_a_system_token(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await get_token(client, world.a)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert ScopeSet.parse(body["scope"]) == ROLE_SCOPES[Context.system]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    c = claims(body["access_token"])
    assert c["sub"] == world.a.client_id and c["client_id"] == world.a.client_id
    assert c["tenant_id"] == world.a.id and c["subject_kind"] == "system"
    assert {"iss", "aud", "iat", "exp", "jti"} <= set(c)


async def test_credentials_in_the_body_work_too(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": world.a.client_id,
            "client_secret": world.a.client_secret,
            "scope": "system/clients.rs",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system/clients.rs"


async def test_a_token_never_carries_more_than_the_client_may_hold(
    client: httpx.AsyncClient, world: World
) -> None:
    too_much = await get_token(client, world.a, scope="system/clients.rs clinician/clients.r")
    assert too_much.status_code == 400
    assert too_much.json()["error"] == "invalid_scope"
    malformed = await get_token(client, world.a, scope="system/clients.sr")
    assert malformed.json()["error"] == "invalid_scope"


async def test_wrong_secret_is_invalid_client_with_a_challenge(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(world.a.client_id, "hws_wrong"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    unknown = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("oac_nobody", "x")
    )
    assert unknown.status_code == 401


async def test_unsupported_grant_and_bad_requests(client: httpx.AsyncClient, world: World) -> None:
    password = await get_token(client, world.a, grant_type="password")
    assert password.status_code == 400
    assert password.json()["error"] == "unsupported_grant_type"
    as_json = await client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.json()["error"] == "invalid_request"
    twice = await client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(world.a.client_id, world.a.client_secret),
    )
    assert twice.json()["error"] == "invalid_request"


async def test_basic_credentials_are_form_decoded(client: httpx.AsyncClient, world: World) -> None:
    # RFC 6749 2.3.1: the id and secret are form-urlencoded before being Basic-encoded.
    raw = f"{world.a.client_id}:{world.a.client_secret.replace('-', '%2D')}"
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()},
    )
    assert response.status_code == 200


async def test_exchange_for_a_client_by_external_id(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await get_token(
        client,
        world.a,
        grant_type=EXCHANGE,
        subject_token="A-clt-1",
        subject_token_type="urn:homework:token-type:client-external-id",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 900
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert ScopeSet.parse(body["scope"]) == ROLE_SCOPES[Context.client]
    c = claims(body["access_token"])
    assert c["sub"] == world.a.clients["A1"] and c["subject_kind"] == "client"
    read = await client.get(
        f"/v1/clients/{world.a.clients['A1']}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert read.status_code == 200


async def test_exchange_for_a_clinician_by_our_id_with_narrowed_scope(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await get_token(
        client,
        world.a,
        grant_type=EXCHANGE,
        subject_token=world.a.clinicians["A1"],
        subject_token_type="urn:homework:token-type:clinician-id",
        scope="clinician/clients.rs",
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "clinician/clients.rs"


async def test_exchange_refuses_scopes_beyond_the_role(
    client: httpx.AsyncClient, world: World
) -> None:
    for scope in ("client/webhooks.r", "system/clients.r", "client/clients.d"):
        response = await get_token(
            client,
            world.a,
            grant_type=EXCHANGE,
            subject_token="A-clt-1",
            subject_token_type="urn:homework:token-type:client-external-id",
            scope=scope,
        )
        assert response.status_code == 400, scope
        assert response.json()["error"] == "invalid_scope"


async def test_exchange_cannot_reach_another_tenants_people(
    client: httpx.AsyncClient, world: World
) -> None:
    for subject, kind in (
        (world.b.clients["B1"], "client-id"),
        ("B-clt-1", "client-external-id"),
        (world.b.clinicians["B1"], "clinician-id"),
    ):
        response = await get_token(
            client,
            world.a,
            grant_type=EXCHANGE,
            subject_token=subject,
            subject_token_type=f"urn:homework:token-type:{kind}",
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


async def test_exchange_needs_a_known_subject_token_type(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await get_token(
        client, world.a, grant_type=EXCHANGE, subject_token="x", subject_token_type="urn:other"
    )
    assert response.json()["error"] == "invalid_request"


async def test_jwks_and_metadata(client: httpx.AsyncClient, world: World) -> None:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    token = (await get_token(client, world.a)).json()["access_token"]
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in keys if k["kid"] == kid]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key
    # The published key verifies the token (as any resource server would check it).
    assert jwt.decode(token, key, algorithms=["ES256"], audience="homework-api")["sub"]
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["token_endpoint"].endswith("/oauth/token")
    assert metadata["grant_types_supported"] == ["client_credentials", EXCHANGE]
    # Only what we support: no authorization endpoint, so no response type (RFC 8414 requires
    # the member, hence an empty list), and the client authentication methods we take, with
    # no signing algorithms, which only JWT client authentication would use.
    assert "authorization_endpoint" not in metadata
    assert metadata["response_types_supported"] == []
    methods = ["client_secret_basic", "client_secret_post"]
    for endpoint in ("token", "revocation", "introspection"):
        assert metadata[f"{endpoint}_endpoint_auth_methods_supported"] == methods
    assert not [name for name in metadata if "signing_alg" in name]
