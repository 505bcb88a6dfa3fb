"""Tokens that must be refused, each with 401 problem+json and `error="invalid_token"`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import httpx
import pytest
from jose import jwt

from app.core.keys import SigningKey, generate_pem
from app.core.tokens import TokenService
from tests.world import World


def _b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(world: World, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "http://127.0.0.1:8000",
        "aud": "homework-api",
        "sub": world.a.client_id,
        "client_id": world.a.client_id,
        "iat": now,
        "exp": now + 600,
        "jti": "tok_test",
        "scope": "system/clients.rs",
        "tenant_id": world.a.id,
        "subject_kind": "system",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _signed(world: World, claims: dict[str, object], **header: object) -> str:
    service: TokenService = world.app.state.tokens
    key = service.keys.active
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    headers = {k: v for k, v in headers.items() if v is not None}
    return jwt.encode(claims, key.private, algorithm="ES256", headers=headers)


def alg_none(world: World) -> str:
    kid = world.app.state.tokens.keys.active.kid
    return f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{_b64(_claims(world))}."


def hs256_with_our_public_key(world: World) -> str:
    # The classic confusion: our public key (which anyone can read) used as an HMAC secret.
    service: TokenService = world.app.state.tokens
    public_pem = service.keys.active.public.to_pem().decode()
    header = {"alg": "HS256", "typ": "at+jwt", "kid": service.keys.active.kid}
    signing_input = f"{_b64(header)}.{_b64(_claims(world))}"
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def expired(world: World) -> str:
    past = int(time.time()) - 3600
    return _signed(world, _claims(world, iat=past - 600, exp=past))


def not_yet_valid(world: World) -> str:
    future = int(time.time()) + 600
    return _signed(world, _claims(world, nbf=future, exp=future + 600))


def wrong_audience(world: World) -> str:
    return _signed(world, _claims(world, aud="someone-else"))


def wrong_issuer(world: World) -> str:
    return _signed(world, _claims(world, iss="https://evil.example"))


def unknown_kid(world: World) -> str:
    return _signed(world, _claims(world), kid="not-a-key-of-ours")


def missing_typ(world: World) -> str:
    return _signed(world, _claims(world), typ=None)


def wrong_typ(world: World) -> str:
    return _signed(world, _claims(world), typ="JWT")


def typ_not_a_string(world: World) -> str:
    return _signed(world, _claims(world), typ=["at+jwt"])  # used to be a 500


def critical_extension(world: World) -> str:
    # RFC 7515 §4.1.11: an extension marked critical that we do not understand, MUST refuse.
    return _signed(world, _claims(world), crit=["b64x"], b64x=1)


def exp_not_a_number(world: World) -> str:
    return _signed(world, _claims(world, exp=[int(time.time()) + 600]))  # used to be a 500


def without_iat(world: World) -> str:
    return _signed(world, _claims(world, iat=None))


def tampered_payload(world: World) -> str:
    header, _, signature = _signed(world, _claims(world, scope="system/clients.r")).split(".")
    forged = _b64(_claims(world, scope="system/clients.cruds system/audit.rs"))
    return f"{header}.{forged}.{signature}"


def signed_by_a_stranger(world: World) -> str:
    stranger = SigningKey.from_pem(
        generate_pem(), "ES256", kid=world.app.state.tokens.keys.active.kid
    )
    return jwt.encode(
        _claims(world),
        stranger.private,
        algorithm="ES256",
        headers={"kid": stranger.kid, "typ": "at+jwt"},
    )


def jwe_shaped(world: World) -> str:
    return "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"


def garbage(world: World) -> str:
    return "not.a.jwt"


def lifetime_within_leeway_is_fine(world: World) -> str:
    # 10 s past expiry is inside the 30 s leeway: this one must be accepted (see below).
    now = int(time.time())
    return _signed(world, _claims(world, iat=now - 700, exp=now - 10))


ATTACKS: list[Callable[[World], str]] = [
    alg_none,
    hs256_with_our_public_key,
    expired,
    not_yet_valid,
    wrong_audience,
    wrong_issuer,
    unknown_kid,
    missing_typ,
    wrong_typ,
    typ_not_a_string,
    critical_extension,
    exp_not_a_number,
    without_iat,
    tampered_payload,
    signed_by_a_stranger,
    jwe_shaped,
    garbage,
]

# Refusals that once were a 500 or a vaguer message, and what they say now.
DESCRIBED: dict[Callable[[World], str], str] = {
    typ_not_a_string: "the token is not an access token (typ must be at+jwt)",
    critical_extension: "the token marks header extensions critical (crit); none is supported",
    exp_not_a_number: "the token's exp claim is not a NumericDate (a number)",
    without_iat: "the token lacks the iat claim (RFC 9068 requires it)",
}


@pytest.mark.parametrize("forge", ATTACKS, ids=[f.__name__ for f in ATTACKS])
async def test_forged_tokens_are_refused(
    client: httpx.AsyncClient, world: World, forge: Callable[[World], str]
) -> None:
    response = await client.get("/v1/clients", headers={"Authorization": f"Bearer {forge(world)}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith(
        'Bearer realm="homework", error="invalid_token"'
    )
    assert response.json()["error"] == "invalid_token"
    if forge in DESCRIBED:
        assert response.json()["detail"] == DESCRIBED[forge]


async def test_the_control_token_is_accepted(client: httpx.AsyncClient, world: World) -> None:
    # Proves the forgeries above fail for the reason they were forged, not for a broken setup.
    for token in (
        _signed(world, _claims(world)),
        lifetime_within_leeway_is_fine(world),
        _signed(world, _claims(world), typ="AT+JWT"),  # media types compare case-insensitively
        _signed(world, _claims(world), typ="application/at+jwt"),
    ):
        response = await client.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


async def test_missing_or_non_bearer_credentials(client: httpx.AsyncClient, world: World) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = await client.get("/v1/clients", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="homework"'


async def test_a_token_without_the_scope_gets_403_naming_it(
    client: httpx.AsyncClient, world: World
) -> None:
    token = _signed(world, _claims(world, scope="system/templates.r"))
    response = await client.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["scope"] == "system/clients.s"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="system/clients.s"' in response.headers["www-authenticate"]


async def test_scopes_of_another_context_are_ignored(
    client: httpx.AsyncClient, world: World
) -> None:
    # A client token that smuggles a system scope gains nothing from it.
    token = _signed(
        world,
        _claims(
            world,
            sub=world.a.clients["A2"],
            subject_kind="client",
            scope="client/clients.r system/clients.rs",
        ),
    )
    response = await client.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


async def test_a_token_accepted_once_is_still_refused_after_it_expires(
    client: httpx.AsyncClient, world: World
) -> None:
    # Verified tokens are remembered (app.core.tokens.RecentlyVerified) only until they expire.
    leeway = world.app.state.tokens.settings.token_leeway_seconds
    token = _signed(world, _claims(world, exp=int(time.time()) + 1 - leeway))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/clients", headers=headers)).status_code == 200
    await asyncio.sleep(2.5)  # expiry is checked to the whole second
    refused = await client.get("/v1/clients", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Bearer realm="homework"')
