"""JWT access tokens (RFC 9068): issued by us, or by a tenant's own identity provider.

Verification trusts nothing the token says about how to verify it: the key is found by `kid`
among keys we chose, and the algorithm is the key's own, never the header's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jose import jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError, JWTError

from app.core.config import Settings
from app.core.ids import new_id
from app.core.keys import KeyRing
from app.core.scopes import ROLE_SCOPES, Context, ScopeSet

ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def _capped(scopes: ScopeSet, kind: Context) -> ScopeSet:
    """Whatever a token claims, it carries at most what its kind of subject may ever hold, and
    only in its own context: an identity provider cannot grant a clinician `clients.d`."""
    return scopes.intersect(ROLE_SCOPES[kind])


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why, for the WWW-Authenticate header."""


@dataclass(frozen=True)
class TrustedIssuer:
    """A tenant's identity provider: whose tokens we accept, and how to read them."""

    tenant_id: str
    issuer: str
    audience: str
    kind_claim: str
    external_id_claim: str
    find_key: Callable[[str], Awaitable[tuple[Key, str] | None]]


@dataclass(frozen=True)
class VerifiedToken:
    tenant_id: str
    kind: Context
    subject: str
    """Our id for our own tokens; the vendor's external id for an identity provider's."""
    subject_is_external: bool
    client_id: str
    token_id: str
    scopes: ScopeSet
    expires_at: int


class RecentlyVerified:
    """Our own tokens verified before, each until it expires. An app sends the same token for
    its whole life, and parsing and checking an ES256 signature costs more than the rest of a
    cached read. Only ours: a tenant's identity provider can be distrusted at any moment, our
    keys change only with a restart."""

    def __init__(self, size: int = 16384) -> None:
        self.size = size
        self._tokens: OrderedDict[str, VerifiedToken] = OrderedDict()

    def get(self, token: str, now: float, leeway: int) -> VerifiedToken | None:
        verified = self._tokens.get(token)
        if verified is None:
            return None
        if int(now) > verified.expires_at + leeway:  # python-jose's own rule, to the second
            del self._tokens[token]
            return None
        self._tokens.move_to_end(token)
        return verified

    def put(self, token: str, verified: VerifiedToken) -> None:
        self._tokens[token] = verified
        if len(self._tokens) > self.size:
            self._tokens.popitem(last=False)


class TokenService:
    def __init__(
        self,
        settings: Settings,
        keys: KeyRing,
        find_issuer: Callable[[str], Awaitable[TrustedIssuer | None]],
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.find_issuer = find_issuer
        self.recently_verified = RecentlyVerified()

    def issue(
        self,
        *,
        tenant_id: str,
        kind: Context,
        subject: str,
        client_id: str,
        scopes: ScopeSet,
        ttl_seconds: int,
    ) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "sub": subject,
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": new_id("tok"),
            "scope": str(scopes),
            "tenant_id": tenant_id,
            "subject_kind": kind.value,
        }
        key = self.keys.active
        token = jwt.encode(
            claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "at+jwt"}
        )
        return token, ttl_seconds

    async def verify(self, token: str) -> VerifiedToken:
        known = self.recently_verified.get(token, time.time(), self.settings.token_leeway_seconds)
        if known is not None:
            return known
        if token.count(".") != 2:
            raise InvalidToken("the token is not a signed JWT")  # JWE has five parts
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.get_unverified_claims(token)
        except JWTError as exc:
            raise InvalidToken("the token is malformed") from exc
        if header.get("typ") not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("the token is not an access token (typ)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no key (kid)")
        issuer = unverified.get("iss")
        if issuer == self.settings.issuer:
            verified = self._verify_ours(token, kid)
            self.recently_verified.put(token, verified)
            return verified
        trusted = await self.find_issuer(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise InvalidToken("the token's issuer is not trusted")
        return await self._verify_theirs(token, kid, trusted)

    def _verify_ours(self, token: str, kid: str) -> VerifiedToken:
        key = self.keys.by_kid.get(kid)
        if key is None:
            raise InvalidToken("the token was signed by an unknown key")
        claims = self._decode(
            token, key.public, key.algorithm, self.settings.audience, self.settings.issuer
        )
        try:
            kind = Context(claims["subject_kind"])
            scopes = ScopeSet.parse(claims.get("scope"))
            return VerifiedToken(
                tenant_id=str(claims["tenant_id"]),
                kind=kind,
                subject=str(claims["sub"]),
                subject_is_external=False,
                client_id=str(claims["client_id"]),
                token_id=str(claims["jti"]),
                scopes=_capped(scopes, kind),
                expires_at=int(claims["exp"]),
            )
        except (KeyError, ValueError) as exc:
            raise InvalidToken("the token lacks a required claim") from exc

    async def _verify_theirs(self, token: str, kid: str, trusted: TrustedIssuer) -> VerifiedToken:
        found = await trusted.find_key(kid)
        if found is None:
            raise InvalidToken("the token was signed by an unknown key")
        key, algorithm = found
        claims = self._decode(token, key, algorithm, trusted.audience, trusted.issuer)
        try:
            kind = Context(claims[trusted.kind_claim])
            if kind is Context.system:
                raise InvalidToken("an identity provider cannot issue system tokens")
            return VerifiedToken(
                tenant_id=trusted.tenant_id,
                kind=kind,
                subject=str(claims[trusted.external_id_claim]),
                subject_is_external=True,
                client_id=str(claims.get("client_id") or claims.get("azp") or trusted.issuer),
                token_id=str(claims.get("jti") or ""),
                scopes=_capped(ScopeSet.parse(claims.get("scope")), kind),
                expires_at=int(claims["exp"]),
            )
        except (KeyError, ValueError) as exc:
            raise InvalidToken("the token lacks a required claim") from exc

    def _decode(
        self, token: str, key: Key, algorithm: str, audience: str, issuer: str
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                options={
                    "leeway": self.settings.token_leeway_seconds,
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_aud": True,
                    "require_iss": True,
                },
            )
        except ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except JWTClaimsError as exc:
            raise InvalidToken(f"the token's claims are not valid: {exc}") from exc
        except JOSEError as exc:
            raise InvalidToken("the token's signature is not valid") from exc
        return claims
