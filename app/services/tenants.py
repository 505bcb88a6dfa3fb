"""Tenants and their OAuth clients (the vendor backends' credentials)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_secret
from app.core.scopes import ALL_SCOPES, ScopeSet
from app.models import OAuthClient, Tenant


@dataclass(frozen=True)
class IssuedCredentials:
    tenant_id: str
    client_id: str
    client_secret: str
    scope: str


def hash_secret(secret: str) -> str:
    # The secret is 256 random bits, so a plain digest is as good as a slow hash here and
    # keeps the token endpoint fast.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_tenant(session: AsyncSession, name: str) -> IssuedCredentials:
    tenant = Tenant(name=name)
    session.add(tenant)
    await session.flush()
    return await create_oauth_client(session, tenant.id, f"{name} backend", ALL_SCOPES)


async def create_oauth_client(
    session: AsyncSession, tenant_id: str, name: str, scopes: ScopeSet
) -> IssuedCredentials:
    secret = new_secret("hws")
    client = OAuthClient(
        tenant_id=tenant_id, name=name, secret_hash=hash_secret(secret), allowed_scopes=str(scopes)
    )
    session.add(client)
    await session.flush()
    return IssuedCredentials(tenant_id, client.id, secret, str(scopes))


async def authenticate_client(
    session: AsyncSession, client_id: str, client_secret: str
) -> OAuthClient | None:
    client = await session.get(OAuthClient, client_id)
    # Compare even when the client is unknown, so timing does not tell which ids exist.
    expected = client.secret_hash if client else hash_secret("")
    matches = hmac.compare_digest(expected, hash_secret(client_secret))
    if client is None or not matches or client.revoked_at is not None:
        return None
    return client


async def list_tenants(session: AsyncSession) -> list[tuple[Tenant, int]]:
    statement = (
        select(Tenant, func.count(OAuthClient.id))
        .outerjoin(OAuthClient, OAuthClient.tenant_id == Tenant.id)
        .group_by(Tenant.id)
        .order_by(Tenant.created_at)
    )
    return [(tenant, count) for tenant, count in (await session.execute(statement)).all()]
