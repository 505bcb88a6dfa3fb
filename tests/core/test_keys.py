"""Our own signing keys: RS256 as well as ES256, and rotation across several keys."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.config import Environment, Settings
from app.core.keys import KeyRing, generate_pem
from app.core.scopes import ROLE_SCOPES, Context
from app.core.tokens import InvalidToken, TokenService


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _service(keys: list[dict[str, str]]) -> TokenService:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, env=Environment.test, signing_keys=json.dumps(keys)
    )

    async def no_idp(issuer: str) -> None:
        return None

    return TokenService(settings, KeyRing.from_settings(settings), no_idp)


def _issue(service: TokenService) -> str:
    token, _ = service.issue(
        tenant_id="ten_1",
        kind=Context.client,
        subject="clt_1",
        client_id="oac_1",
        scopes=ROLE_SCOPES[Context.client],
        ttl_seconds=60,
    )
    return token


async def test_rs256_keys_sign_and_verify() -> None:
    service = _service([{"kid": "rsa-1", "alg": "RS256", "pem": _rsa_pem()}])
    verified = await service.verify(_issue(service))
    assert verified.subject == "clt_1" and verified.kind is Context.client
    (published,) = service.keys.jwks()["keys"]
    assert published["kty"] == "RSA" and published["kid"] == "rsa-1" and "d" not in published


async def test_rotation_keeps_the_retiring_keys_tokens_valid() -> None:
    old = {"kid": "2026-01", "alg": "ES256", "pem": generate_pem()}
    new = {"kid": "2026-07", "alg": "ES256", "pem": generate_pem()}
    before = _service([old])
    token_from_old = _issue(before)

    during = _service([new, old])
    assert during.keys.active.kid == "2026-07"
    assert {k["kid"] for k in during.keys.jwks()["keys"]} == {"2026-07", "2026-01"}
    assert (await during.verify(token_from_old)).subject == "clt_1"
    assert (await during.verify(_issue(during))).subject == "clt_1"

    after = _service([new])
    with pytest.raises(InvalidToken, match="unknown key"):
        await after.verify(token_from_old)


def test_unsupported_algorithms_are_refused() -> None:
    with pytest.raises(ValueError, match="HS256"):
        _service([{"kid": "h", "alg": "HS256", "pem": generate_pem()}])
