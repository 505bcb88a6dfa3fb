"""Tenants' own identity providers: configured here, consulted by token verification."""

from __future__ import annotations

import functools
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings
from app.core.errors import ValidationFailed
from app.core.jwks_cache import JwksCache
from app.core.outbound import OutboundPolicy, UnsafeUrl, resolve_safe
from app.core.tokens import TrustedIssuer
from app.models import IdentityProvider
from app.models.base import utcnow
from app.schemas.identity_providers import IdentityProviderIn

DIRECTORY_TTL_SECONDS = 30.0


def outbound_policy(settings: Settings) -> OutboundPolicy:
    return OutboundPolicy(
        allow_http=settings.outbound_allow_http, allowed_hosts=settings.allowed_outbound_hosts
    )


async def save(
    session: AsyncSession, settings: Settings, tenant_id: str, body: IdentityProviderIn
) -> IdentityProvider:
    try:
        await resolve_safe(body.jwks_url, outbound_policy(settings))
    except UnsafeUrl as exc:
        raise ValidationFailed.for_field("body", ["jwks_url"], str(exc), "unsafe_url") from exc
    if body.issuer.rstrip("/") == settings.issuer.rstrip("/"):
        raise ValidationFailed.for_field("body", ["issuer"], "is our own issuer", "issuer")
    taken = await session.scalar(
        select(IdentityProvider.tenant_id).where(
            IdentityProvider.issuer == body.issuer, IdentityProvider.tenant_id != tenant_id
        )
    )
    if taken is not None:
        raise ValidationFailed.for_field(
            "body", ["issuer"], "is already trusted by another tenant", "issuer_taken"
        )
    provider = await session.get(IdentityProvider, tenant_id)
    if provider is None:
        provider = IdentityProvider(tenant_id=tenant_id)
        session.add(provider)
    for field, value in body.model_dump().items():
        setattr(provider, field, value)
    provider.updated_at = utcnow()
    await session.flush()
    return provider


async def mark_keys_distrusted(session: AsyncSession, tenant_id: str) -> IdentityProvider | None:
    """Record a forced JWKS refresh on the tenant's provider, None if it has none. Its
    `updated_at` is the mark every API process compares with the keys it holds (see
    `distrust_before`), so no process keeps keys fetched before it."""
    provider = await session.get(IdentityProvider, tenant_id)
    if provider is None:
        return None
    provider.updated_at = utcnow()
    await session.flush()
    return provider


def distrust_before(provider: IdentityProvider) -> float:
    """Keys fetched before the provider last changed (saved, or refreshed by force) are not
    trusted: a replaced configuration or a compromised key must not outlive the change."""
    return provider.updated_at.timestamp()


class IssuerDirectory:
    """Finds the tenant that trusts an issuer, with a short in-process cache so that verifying
    an IdP token costs no query in the common case."""

    def __init__(self, engine: AsyncEngine, jwks: JwksCache) -> None:
        self.engine = engine
        self.jwks = jwks
        self._cache: dict[str, tuple[float, TrustedIssuer | None]] = {}

    async def find(self, issuer: str) -> TrustedIssuer | None:
        cached = self._cache.get(issuer)
        if cached and time.monotonic() - cached[0] < DIRECTORY_TTL_SECONDS:
            return cached[1]
        async with AsyncSession(self.engine) as session:
            provider = await session.scalar(
                select(IdentityProvider).where(IdentityProvider.issuer == issuer)
            )
        trusted = self._trusted(provider) if provider else None
        if len(self._cache) > 10_000:  # unknown issuers are attacker-chosen: bound the cache
            self._cache.clear()
        self._cache[issuer] = (time.monotonic(), trusted)
        return trusted

    def forget(self) -> None:
        self._cache.clear()

    def distrust_keys(self, provider: IdentityProvider) -> None:
        """In this process at once (the others within DIRECTORY_TTL_SECONDS): drop the keys
        held for the provider's JWKS, and its cached configuration with the old mark."""
        self.jwks.distrust(provider.jwks_url, distrust_before(provider))
        self._cache.pop(provider.issuer, None)

    def _trusted(self, provider: IdentityProvider) -> TrustedIssuer:
        return TrustedIssuer(
            tenant_id=provider.tenant_id,
            issuer=provider.issuer,
            audience=provider.audience,
            kind_claim=provider.kind_claim,
            external_id_claim=provider.external_id_claim,
            max_token_lifetime_seconds=provider.max_token_lifetime_seconds,
            find_key=functools.partial(
                self.jwks.find, provider.jwks_url, distrust_before=distrust_before(provider)
            ),
        )
