"""Tenants and their OAuth clients (the vendor backends' credentials), over their life:
created, listed, a secret rotated with an overlap, revoked; every change audited."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import revocations
from app.core.errors import Conflict, NotFound
from app.core.ids import new_secret
from app.core.scopes import ALL_SCOPES, Context, ScopeSet
from app.core.security import Principal
from app.models import OAuthClient, Tenant
from app.models.base import utcnow
from app.models.revocations import RevokedKind
from app.services import audit
from app.services.audit import Action

OPERATOR = "homework-cli"


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


_NO_SECRET = hash_secret("")


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
    given = hash_secret(client_secret)
    # Both comparisons always run, even for an unknown client, so that timing tells neither
    # which ids exist nor which of a rotating client's secrets was sent.
    current = hmac.compare_digest(client.secret_hash if client else _NO_SECRET, given)
    previous = hmac.compare_digest(
        (client.previous_secret_hash if client else None) or _NO_SECRET, given
    )
    if client is None or client.revoked_at is not None:
        return None
    if current or (previous and _previous_secret_valid(client, utcnow())):
        return client
    return None


def _previous_secret_valid(client: OAuthClient, now: datetime) -> bool:
    expires = client.previous_secret_expires_at
    return client.previous_secret_hash is not None and expires is not None and now < expires


def operator(tenant_id: str) -> Principal:
    """Who the `homework tenants` commands act as in the audit trail: the operator at the
    server's console, not any token."""
    return Principal(
        tenant_id=tenant_id,
        kind=Context.system,
        subject_id=OPERATOR,
        client_app_id=OPERATOR,
        token_id=OPERATOR,
        scopes=ScopeSet(),
    )


async def list_oauth_clients(session: AsyncSession, principal: Principal) -> list[OAuthClient]:
    """The tenant's clients, revoked ones too, oldest first."""
    statement = (
        select(OAuthClient)
        .where(OAuthClient.tenant_id == principal.tenant_id)
        .order_by(OAuthClient.created_at, OAuthClient.id)
    )
    clients = list((await session.scalars(statement)).all())
    await _audit(session, principal, Action.list, clients)
    return clients


async def find_oauth_client(
    session: AsyncSession, principal: Principal, client_id: str
) -> OAuthClient:
    client = await session.get(OAuthClient, client_id)
    if client is None or client.tenant_id != principal.tenant_id:
        raise NotFound("No such OAuth client in your tenant.")
    return client


async def get_oauth_client(
    session: AsyncSession, principal: Principal, client_id: str
) -> OAuthClient:
    client = await find_oauth_client(session, principal, client_id)
    await _audit(session, principal, Action.read, [client])
    return client


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    client: OAuthClient,
    old_secret_valid_for: timedelta,
) -> str:
    """A new secret, returned once; the one it replaces keeps working for the overlap (none if
    zero), so that every instance of the vendor's backend can switch without an outage. Only
    one old secret overlaps: rotating again ends the previous overlap at once."""
    if client.revoked_at is not None:
        raise Conflict("A revoked OAuth client cannot be rotated; create another one.")
    secret = new_secret("hws")
    now = utcnow()
    overlap = bool(old_secret_valid_for)
    client.previous_secret_hash = client.secret_hash if overlap else None
    client.previous_secret_expires_at = now + old_secret_valid_for if overlap else None
    client.secret_hash = hash_secret(secret)
    client.secret_rotated_at = now
    await session.flush()
    await _audit(session, principal, Action.update, [client])
    return secret


async def revoke_client(session: AsyncSession, principal: Principal, client: OAuthClient) -> None:
    """No secret of it works any more, and every token it obtained (its system tokens, the
    clinician and client tokens it exchanged for) is refused from the next request on.
    Revoking a revoked client changes nothing."""
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        client.previous_secret_hash = client.previous_secret_expires_at = None
        await session.flush()
        await revocations.revoke(session, client.tenant_id, RevokedKind.oauth_client, client.id)
    await _audit(session, principal, Action.delete, [client])


async def _audit(
    session: AsyncSession, principal: Principal, action: Action, clients: list[OAuthClient]
) -> None:
    # By id only: a name or a secret is never in the trail.
    await audit.record(session, principal, action, "oauth_client", [(None, c.id) for c in clients])


async def list_tenants(session: AsyncSession) -> list[tuple[Tenant, int]]:
    statement = (
        select(Tenant, func.count(OAuthClient.id))
        .outerjoin(OAuthClient, OAuthClient.tenant_id == Tenant.id)
        .group_by(Tenant.id)
        .order_by(Tenant.created_at)
    )
    return [(tenant, count) for tenant, count in (await session.execute(statement)).all()]
