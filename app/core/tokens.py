"""JWT access tokens (RFC 9068): issued by us, or by a tenant's own identity provider.

Verification trusts nothing the token says about how to verify it: the key is found by `kid`
among keys we chose, and the algorithm is the key's own, never the header's.

A tenant's IdP is held to more than our own tokens are, since we do not choose its settings:
a bounded lifetime and issue time, and its scopes read in the forms IdPs actually send
(`scope` as a string or an array, Entra's and Okta's `scp`), ignoring names outside our grammar
(`openid`, `profile`, the IdP's own) rather than refusing the token for them.
"""

from __future__ import annotations

import logging
import math
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
from app.core.scopes import ROLE_SCOPES, Context, Scope, ScopeError, ScopeSet

# RFC 9068 §2.1; media types compare case-insensitively (RFC 2045 §5.1), so `at+JWT` is one.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Claims every access token must carry (RFC 9068 §2.2), checked by us for a precise refusal.
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat")
TIME_CLAIMS = ("exp", "iat", "nbf")
# What a DEBUG line lists of the scopes ignored in one token: names only, bounded.
LOGGED_SCOPES, LOGGED_SCOPE_CHARS = 20, 100
log = logging.getLogger("homework.tokens")


def _capped(scopes: ScopeSet, kind: Context) -> ScopeSet:
    """Whatever a token claims, it carries at most what its kind of subject may ever hold, and
    only in its own context: an identity provider cannot grant a clinician `clients.d`."""
    return scopes.intersect(ROLE_SCOPES[kind])


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why, for the WWW-Authenticate header, and
    `reason` is one word for the metrics (expired, or invalid for every other flaw)."""

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrustedIssuer:
    """A tenant's identity provider: whose tokens we accept, and how to read them."""

    tenant_id: str
    issuer: str
    audience: str
    kind_claim: str
    external_id_claim: str
    find_key: Callable[[str], Awaitable[tuple[Key, str] | None]]
    # None: the service's HOMEWORK_IDP_MAX_TOKEN_LIFETIME_SECONDS.
    max_token_lifetime_seconds: int | None = None


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
        _check_header(header)
        _check_time_claim_types(unverified)
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
        self._check_lifetime(claims, trusted.max_token_lifetime_seconds)
        kind = _subject_kind(claims.get(trusted.kind_claim))
        subject = claims.get(trusted.external_id_claim)
        # Numbers too: an IdP's own user ids often are, in a claim of the tenant's choosing.
        if isinstance(subject, bool) or not isinstance(subject, str | int) or subject == "":
            raise InvalidToken("the token's external id claim is missing or not a string")
        return VerifiedToken(
            tenant_id=trusted.tenant_id,
            kind=kind,
            subject=str(subject),
            subject_is_external=True,
            client_id=str(claims.get("client_id") or claims.get("azp") or trusted.issuer),
            token_id=str(claims.get("jti") or ""),
            scopes=_granted_scopes(claims, kind, trusted.tenant_id),
            expires_at=int(claims["exp"]),
        )

    def _check_lifetime(self, claims: dict[str, Any], tenants_longest: int | None) -> None:
        """An IdP's token may not claim to be issued ahead of our clock (beyond the leeway) nor
        live longer than we allow: a stolen long-lived token would otherwise outlast any
        revocation on the IdP's side."""
        leeway = self.settings.token_leeway_seconds
        if claims["iat"] > time.time() + leeway:
            raise InvalidToken(
                f"the token's iat is in the future (beyond {leeway} s of clock skew)"
            )
        longest = tenants_longest or self.settings.idp_max_token_lifetime_seconds
        if claims["exp"] - claims["iat"] > longest:
            raise InvalidToken(f"the token's lifetime (exp - iat) exceeds {longest} s")

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
                # Presence is checked below: python-jose reports a missing claim as a bad
                # signature.
                options={"leeway": self.settings.token_leeway_seconds},
            )
        except ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired", reason="expired") from exc
        except JWTClaimsError as exc:
            raise InvalidToken(f"the token's claims are not valid: {exc}") from exc
        except JOSEError as exc:
            raise InvalidToken("the token's signature is not valid") from exc
        missing = next((name for name in REQUIRED_CLAIMS if name not in claims), None)
        if missing is not None:
            raise InvalidToken(f"the token lacks the {missing} claim (RFC 9068 requires it)")
        return claims


def _check_header(header: dict[str, Any]) -> None:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("the token is not an access token (typ must be at+jwt)")
    # RFC 7515 §4.1.11: a recipient MUST refuse a token whose critical extensions it does not
    # understand, and we understand none. The names are not echoed: they are the sender's text.
    if "crit" in header:
        raise InvalidToken("the token marks header extensions critical (crit); none is supported")


def _check_time_claim_types(claims: dict[str, Any]) -> None:
    """Before python-jose sees them: it passes numeric strings, and fails on lists or on the
    `Infinity` that Python's JSON parser accepts with exceptions of its own (a 500), where
    RFC 7519 wants a number."""
    for name in TIME_CLAIMS:
        if name in claims and not _is_numeric_date(claims[name]):
            raise InvalidToken(f"the token's {name} claim is not a NumericDate (a number)")


def _is_numeric_date(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _subject_kind(value: object) -> Context:
    if value == Context.clinician.value:
        return Context.clinician
    if value == Context.client.value:
        return Context.client
    if value == Context.system.value:
        raise InvalidToken("an identity provider cannot issue system tokens")
    raise InvalidToken("the token's subject kind claim is missing or neither clinician nor client")


def _granted_scopes(claims: dict[str, Any], kind: Context, tenant_id: str) -> ScopeSet:
    """The scopes of ours the token carries, capped at its role; names outside our grammar are
    ignored, but a token left with none is refused: it could call nothing."""
    understood, ignored = [], []
    for name in _scope_names(claims):
        try:
            understood.append(Scope.parse(name))
        except ScopeError:
            ignored.append(name)
    if ignored and log.isEnabledFor(logging.DEBUG):
        names = [name[:LOGGED_SCOPE_CHARS] for name in ignored[:LOGGED_SCOPES]]
        log.debug(
            "IdP token scopes outside our grammar ignored",
            extra={"tenant_id": tenant_id, "ignored_scopes": names, "ignored_count": len(ignored)},
        )
    scopes = _capped(ScopeSet(understood), kind)
    if not scopes:
        raise InvalidToken(f"the token carries no scope a {kind} may hold (scope, scp)")
    return scopes


def _scope_names(claims: dict[str, Any]) -> list[str]:
    """`scope` (RFC 9068: a space-separated string; some IdPs send an array) and `scp` (Entra,
    Okta: a string or an array), together."""
    names: list[str] = []
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if value is None:
            continue
        if isinstance(value, str):
            names.extend(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            names.extend(name for item in value for name in item.split())
        else:
            raise InvalidToken(
                f"the token's {claim} claim is neither a string nor an array of them"
            )
    return names
