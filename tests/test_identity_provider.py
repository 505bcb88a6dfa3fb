"""A tenant's own identity provider: tokens signed by another JOSE library (joserfc), keys
served by a real JWKS host on loopback, and key rotation."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi import FastAPI
from joserfc import jwt as jose_rfc
from joserfc.jwk import ECKey, RSAKey

from app.main import create_app
from app.services import identity_providers
from tests.conftest import client_for
from tests.jwks_server import JwksHost, serve_jwks
from tests.world import World, build_world

ISSUER = "https://id.vendor.example/"


@pytest.fixture
def jwks_host() -> Iterator[JwksHost]:
    with serve_jwks() as host:
        yield host


def idp_app_for(make_settings, jwks_host: JwksHost, **overrides: object) -> FastAPI:  # type: ignore[no-untyped-def]
    # The loopback JWKS host is allowed explicitly, as a tenant's on-premise IdP would be.
    return create_app(  # type: ignore[no-any-return]
        make_settings(
            outbound_allow_http=True,
            outbound_allowed_hosts=f"127.0.0.1:{jwks_host.port}",
            **overrides,
        )
    )


@pytest.fixture
async def idp_app(make_settings, jwks_host: JwksHost) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = idp_app_for(make_settings, jwks_host, idp_jwks_min_refetch_seconds=0)
    yield application
    await application.state.database.dispose()


@pytest.fixture
async def idp(idp_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(idp_app) as http:
        yield http


@pytest.fixture
async def idp_world(idp_app: FastAPI) -> World:
    return await build_world(idp_app)


async def trust(
    http: httpx.AsyncClient, world: World, host: JwksHost, **extra: object
) -> httpx.Response:
    return await http.put(
        "/v1/identity-provider",
        json={"issuer": ISSUER, "jwks_url": host.url, "audience": "homework-api", **extra},
        headers=world.headers("system_a"),
    )


def idp_claims(**overrides: object) -> dict[str, object]:
    """A client's token as the IdP issues it; an override of None leaves the claim out."""
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
    return {name: value for name, value in claims.items() if value is not None}


def idp_token(
    key: RSAKey | ECKey, alg: str, header: dict[str, object] | None = None, **overrides: object
) -> str:
    protected = {"alg": alg, "kid": key.kid, "typ": "at+jwt", **(header or {})}
    return jose_rfc.encode(protected, idp_claims(**overrides), key)


def clinician_token(key: RSAKey | ECKey, scope: str) -> str:
    """Clinician A1, on client A1's care team, as the IdP signs them in."""
    return idp_token(key, "RS256", sub="A-cln-1", homework_kind="clinician", scope=scope)


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


@pytest.fixture
async def floored(  # type: ignore[no-untyped-def]
    make_settings, jwks_host: JwksHost
) -> AsyncIterator[tuple[httpx.AsyncClient, World]]:
    """An API with the production floor: one refetch a minute per JWKS URL."""
    application = idp_app_for(make_settings, jwks_host, idp_jwks_min_refetch_seconds=60)
    world = await build_world(application)
    async with client_for(application) as http:
        yield http, world
    await application.state.database.dispose()


async def test_unknown_kids_refetch_at_most_once_a_minute(
    floored: tuple[httpx.AsyncClient, World], jwks_host: JwksHost
) -> None:
    http, world = floored
    key = RSAKey.generate_key(2048, parameters={"kid": "real"})
    jwks_host.keys = [key.as_dict(private=False)]
    await trust(http, world, jwks_host)
    assert (await read_client(http, world, idp_token(key, "RS256"))).status_code == 200
    hits = jwks_host.hits
    for n in range(20):
        forged = RSAKey.generate_key(2048, parameters={"kid": f"forged-{n}"})
        response = await read_client(http, world, idp_token(forged, "RS256"))
        assert response.status_code == 401
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
    greedy = clinician_token(
        key, "clinician/clients.cruds clinician/audit.rs clinician/identity.cruds"
    )
    headers = {"Authorization": f"Bearer {greedy}"}
    client_a1 = idp_world.a.clients["A1"]
    assert (await idp.get(f"/v1/clients/{client_a1}", headers=headers)).status_code == 200
    assert (await idp.delete(f"/v1/clients/{client_a1}", headers=headers)).status_code == 403
    assert (await idp.get("/v1/audit-events", headers=headers)).status_code == 403
    assert (await idp.get("/v1/identity-provider", headers=headers)).status_code == 403


# Hardened and tolerant: what IdPs really send is accepted, what RFC 7515 and RFC 9068 forbid is
# refused, and every refusal is a 401 invalid_token that says why.


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(key: RSAKey, header: dict[str, object], claims: dict[str, object]) -> str:
    """RS256, signed by hand: joserfc itself refuses to produce some of the headers tested."""
    segments = (_b64url(json.dumps(part).encode()) for part in (header, claims))
    signing_input = ".".join(segments)
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


async def refusal(http: httpx.AsyncClient, world: World, token: str) -> str:
    """The error_description of the 401 the token gets."""
    response = await read_client(http, world, token)
    assert response.status_code == 401, response.text
    problem = response.json()
    assert problem["error"] == "invalid_token"
    challenge = response.headers["www-authenticate"]
    assert f'error_description="{problem["detail"]}"' in challenge
    return str(problem["detail"])


async def accepted(http: httpx.AsyncClient, world: World, token: str) -> bool:
    response = await read_client(http, world, token)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


@pytest.fixture
async def rsa_key(idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost) -> RSAKey:
    key = RSAKey.generate_key(2048, parameters={"kid": "k"})
    jwks_host.keys = [key.as_dict(private=False)]
    assert (await trust(idp, idp_world, jwks_host)).status_code == 200
    return key


async def test_an_unknown_critical_header_extension_is_refused(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey
) -> None:
    header: dict[str, object] = {"alg": "RS256", "kid": "k", "typ": "at+jwt", "b64x": 1}
    assert await accepted(idp, idp_world, raw_token(rsa_key, header, idp_claims()))
    # RFC 7515 §4.1.11: the same token, now saying it must not be used without understanding
    # `b64x`, must be refused.
    critical = raw_token(rsa_key, {**header, "crit": ["b64x"]}, idp_claims())
    assert "(crit)" in await refusal(idp, idp_world, critical)


async def test_typ_compares_case_insensitively(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey
) -> None:
    for typ in ("at+JWT", "AT+JWT", "application/at+jwt", "Application/AT+JWT"):
        assert await accepted(idp, idp_world, idp_token(rsa_key, "RS256", {"typ": typ})), typ
    for typ in ("JWT", "at+jwt+x", ""):
        assert "(typ must be at+jwt)" in await refusal(
            idp, idp_world, idp_token(rsa_key, "RS256", {"typ": typ})
        )
    # A typ that is not a string used to be a 500.
    listed = raw_token(rsa_key, {"alg": "RS256", "kid": "k", "typ": ["at+jwt"]}, idp_claims())
    assert "(typ must be at+jwt)" in await refusal(idp, idp_world, listed)


async def test_the_lifetime_is_bounded(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey
) -> None:
    now = int(time.time())
    ten_years = idp_token(rsa_key, "RS256", exp=now + 10 * 365 * 86400)
    assert await refusal(idp, idp_world, ten_years) == (
        "the token's lifetime (exp - iat) exceeds 86400 s"
    )
    a_day = idp_token(rsa_key, "RS256", iat=now - 60, exp=now - 60 + 86400)
    assert await accepted(idp, idp_world, a_day)
    a_day_and_a_second = idp_token(rsa_key, "RS256", iat=now - 60, exp=now - 59 + 86400)
    assert "exceeds 86400 s" in await refusal(idp, idp_world, a_day_and_a_second)


async def test_the_lifetime_limit_is_a_setting(make_settings, jwks_host: JwksHost) -> None:  # type: ignore[no-untyped-def]
    application = idp_app_for(make_settings, jwks_host, idp_max_token_lifetime_seconds=600)
    world = await build_world(application)
    key = RSAKey.generate_key(2048, parameters={"kid": "k"})
    jwks_host.keys = [key.as_dict(private=False)]
    now = int(time.time())
    async with client_for(application) as http:
        await trust(http, world, jwks_host)
        assert await accepted(http, world, idp_token(key, "RS256", exp=now + 600))
        fifteen_minutes = idp_token(key, "RS256", exp=now + 900)
        assert "exceeds 600 s" in await refusal(http, world, fifteen_minutes)
    await application.state.database.dispose()


async def test_the_lifetime_limit_is_set_per_tenant_too(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost, rsa_key: RSAKey
) -> None:
    now = int(time.time())
    two_hours = idp_token(rsa_key, "RS256", iat=now - 60, exp=now - 60 + 7200)
    assert await accepted(idp, idp_world, two_hours)  # the service's 24 h
    stricter = await trust(idp, idp_world, jwks_host, max_token_lifetime_seconds=3600)
    assert stricter.status_code == 200 and stricter.json()["max_token_lifetime_seconds"] == 3600
    assert await refusal(idp, idp_world, two_hours) == (
        "the token's lifetime (exp - iat) exceeds 3600 s"
    )
    an_hour = idp_token(rsa_key, "RS256", iat=now - 60, exp=now - 60 + 3600)
    assert await accepted(idp, idp_world, an_hour)
    for bad in (59, 30 * 86400 + 1, "a day"):
        refused = await trust(idp, idp_world, jwks_host, max_token_lifetime_seconds=bad)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["pointer"] == "/max_token_lifetime_seconds"


async def test_issue_and_start_times_may_be_ahead_only_by_the_clock_skew(
    idp: httpx.AsyncClient, idp_world: World, idp_app: FastAPI, rsa_key: RSAKey
) -> None:
    leeway = idp_app.state.settings.token_leeway_seconds
    assert leeway >= 10
    now = int(time.time())
    within = idp_token(rsa_key, "RS256", iat=now + leeway // 2, exp=now + 300)
    assert await accepted(idp, idp_world, within)
    tomorrow = idp_token(rsa_key, "RS256", iat=now + 86400, exp=now + 86400 + 300)
    assert await refusal(idp, idp_world, tomorrow) == (
        f"the token's iat is in the future (beyond {leeway} s of clock skew)"
    )
    starts_tomorrow = idp_token(rsa_key, "RS256", nbf=now + 86400, exp=now + 600)
    assert "not yet valid (nbf)" in await refusal(idp, idp_world, starts_tomorrow)


async def test_required_and_numeric_time_claims(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey
) -> None:
    # RFC 9068 §2.2 requires iat: a token without it cannot have its lifetime bounded.
    for claim in ("iat", "exp", "sub"):
        no_claim = idp_token(rsa_key, "RS256", **{claim: None})
        assert await refusal(idp, idp_world, no_claim) == (
            f"the token lacks the {claim} claim (RFC 9068 requires it)"
        )
    # A list used to be a 500 (python-jose's int() raised TypeError); a numeric string passed.
    now = int(time.time())
    header: dict[str, object] = {"alg": "RS256", "kid": "k", "typ": "at+jwt"}
    for claim, value in (
        ("exp", [now + 300]),
        ("iat", str(now)),
        ("nbf", {"at": now}),
        ("exp", float("inf")),  # json.dumps writes Infinity, which Python's parser reads back
        ("iat", True),
    ):
        odd = raw_token(rsa_key, header, idp_claims(**{claim: value}))
        assert await refusal(idp, idp_world, odd) == (
            f"the token's {claim} claim is not a NumericDate (a number)"
        ), (claim, value)


async def test_scope_forms_that_idps_send(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey
) -> None:
    for claims in (
        {"scope": "client/clients.r"},
        {"scope": ["client/clients.r"]},  # used to be a 500
        {"scope": ["openid", "client/clients.r client/reminders.r"]},
        {"scope": None, "scp": "client/clients.r"},  # Entra
        {"scope": None, "scp": ["offline_access", "client/clients.r"]},  # Okta
        {"scope": "openid profile", "scp": ["client/clients.r"]},  # both are read
    ):
        assert await accepted(idp, idp_world, idp_token(rsa_key, "RS256", **claims)), claims


async def test_scopes_outside_our_grammar_are_ignored_and_logged_by_name(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey, caplog: pytest.LogCaptureFixture
) -> None:
    # What Auth0, Okta, Keycloak and Entra put in an access token beside the API's own scopes.
    token = clinician_token(
        rsa_key, "openid profile email offline_access clinician/clients.r clinician/assignments.rs"
    )
    headers = {"Authorization": f"Bearer {token}"}
    caplog.set_level(logging.DEBUG, logger="homework.tokens")
    assert (await read_client(idp, idp_world, token)).status_code == 200
    assert (await idp.get("/v1/assignments", headers=headers)).status_code == 200
    # The scopes it carries, and no more: listing clients needs clinician/clients.s.
    assert (await idp.get("/v1/clients", headers=headers)).status_code == 403

    logged = [r for r in caplog.records if r.name == "homework.tokens"]
    assert logged and all(
        r.levelno == logging.DEBUG
        and r.ignored_scopes == ["openid", "profile", "email", "offline_access"]  # type: ignore[attr-defined]
        for r in logged
    )
    signature = token.rsplit(".", 1)[1]
    assert not any(signature in str(vars(r)) for r in caplog.records)


async def test_a_token_with_no_usable_scope_is_refused(
    idp: httpx.AsyncClient, idp_world: World, rsa_key: RSAKey
) -> None:
    for claims in (
        {"scope": "openid profile"},
        {"scope": ""},
        {"scope": None},
        {"scope": "system/clients.rs clinician/clients.r"},  # not a client's to hold
    ):
        assert await refusal(idp, idp_world, idp_token(rsa_key, "RS256", **claims)) == (
            "the token carries no scope a client may hold (scope, scp)"
        ), claims
    for claim, value in (("scope", 42), ("scope", ["client/clients.r", 7]), ("scp", {"a": 1})):
        odd = idp_token(rsa_key, "RS256", **{claim: value})
        assert await refusal(idp, idp_world, odd) == (
            f"the token's {claim} claim is neither a string nor an array of them"
        )


async def refresh_keys(http: httpx.AsyncClient, world: World) -> httpx.Response:
    return await http.post("/v1/identity-provider/refresh-keys", headers=world.headers("system_a"))


async def test_a_forced_refresh_stops_a_removed_key_at_once(
    floored: tuple[httpx.AsyncClient, World], jwks_host: JwksHost
) -> None:
    # With the floor, nothing refetches for a kid we hold until the 1 h TTL, but this.
    http, world = floored
    compromised = RSAKey.generate_key(2048, parameters={"kid": "compromised"})
    replacement = RSAKey.generate_key(2048, parameters={"kid": "replacement"})
    jwks_host.keys = [compromised.as_dict(private=False)]
    await trust(http, world, jwks_host)
    stolen = idp_token(compromised, "RS256")
    assert await accepted(http, world, stolen)
    # The vendor swaps the key in its JWKS; our cached copy still trusts the stolen one.
    jwks_host.keys = [replacement.as_dict(private=False)]
    assert await accepted(http, world, stolen)
    hits = jwks_host.hits

    assert (await refresh_keys(http, world)).status_code == 204
    assert await refusal(http, world, stolen) == "the token was signed by an unknown key"
    assert await accepted(http, world, idp_token(replacement, "RS256"))
    assert jwks_host.hits - hits == 1  # one fetch, despite the floor


async def test_a_forced_refresh_trusts_no_key_while_the_idp_is_down(
    idp: httpx.AsyncClient, idp_world: World, jwks_host: JwksHost, rsa_key: RSAKey
) -> None:
    token = idp_token(rsa_key, "RS256")
    assert await accepted(idp, idp_world, token)
    jwks_host.status = 503
    assert (await refresh_keys(idp, idp_world)).status_code == 204
    # An ordinary refetch that fails keeps the keys held; a forced one has dropped them.
    assert await refusal(idp, idp_world, token) == "the token was signed by an unknown key"
    jwks_host.status = 200
    assert await accepted(idp, idp_world, token)


async def test_a_forced_refresh_reaches_every_api_process(
    make_settings, jwks_host: JwksHost, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    first = idp_app_for(make_settings, jwks_host, idp_jwks_min_refetch_seconds=60)
    second = idp_app_for(make_settings, jwks_host, idp_jwks_min_refetch_seconds=60)
    world = await build_world(first)
    compromised = RSAKey.generate_key(2048, parameters={"kid": "compromised"})
    jwks_host.keys = [compromised.as_dict(private=False)]
    stolen = idp_token(compromised, "RS256")
    async with client_for(first) as one, client_for(second) as other:
        await trust(one, world, jwks_host)
        assert await accepted(one, world, stolen)
        assert await accepted(other, world, stolen)
        jwks_host.keys = []
        assert (await refresh_keys(one, world)).status_code == 204
        hits = jwks_host.hits
        # The other process rereads the provider when its directory entry ages (30 s); then
        # it drops its keys too, whatever the refetch floor.
        monkeypatch.setattr(identity_providers, "DIRECTORY_TTL_SECONDS", 0.0)
        assert await refusal(other, world, stolen) == "the token was signed by an unknown key"
        assert await refusal(other, world, stolen) == "the token was signed by an unknown key"
        assert jwks_host.hits - hits == 1  # each mark is honoured once
    await first.state.database.dispose()
    await second.state.database.dispose()


async def test_a_forced_refresh_needs_a_configured_provider(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await refresh_keys(client, world)
    assert response.status_code == 404
    assert response.json()["detail"] == "No identity provider is configured."
