"""The token endpoint's grants: client credentials, and RFC 8693 token exchange for tokens
bound to one of the tenant's clinicians or clients; revocation and introspection of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jose import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import revocations
from app.core.config import Settings
from app.core.scopes import ROLE_SCOPES, Context, ScopeError, ScopeSet
from app.core.tokens import InvalidToken, TokenService, VerifiedToken
from app.models import Client, Clinician, OAuthClient
from app.models.revocations import RevokedKind

CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ISSUED_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"

# subject_token_type → (the subject's kind, whether subject_token is the vendor's id or ours)
SUBJECT_TOKEN_TYPES: dict[str, tuple[Context, bool]] = {
    "urn:homework:token-type:clinician-id": (Context.clinician, False),
    "urn:homework:token-type:clinician-external-id": (Context.clinician, True),
    "urn:homework:token-type:client-id": (Context.client, False),
    "urn:homework:token-type:client-external-id": (Context.client, True),
}


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class Grant:
    kind: Context
    subject: str
    scopes: ScopeSet


def _requested(scope: str | None) -> ScopeSet | None:
    if scope is None:
        return None
    try:
        return ScopeSet.parse(scope)
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from exc


def _narrow(requested: ScopeSet | None, allowed: ScopeSet) -> ScopeSet:
    if requested is None:
        granted = allowed
    elif not requested.is_subset_of(allowed):
        raise OAuthError("invalid_scope", "The requested scope exceeds what this client may hold.")
    else:
        granted = requested
    if not granted:
        raise OAuthError("invalid_scope", "No scope could be granted.")
    return granted


def client_credentials(client: OAuthClient, scope: str | None) -> Grant:
    allowed = ScopeSet.parse(client.allowed_scopes).only(Context.system)
    return Grant(Context.system, client.id, _narrow(_requested(scope), allowed))


async def token_exchange(session: AsyncSession, client: OAuthClient, form: dict[str, str]) -> Grant:
    subject_token = form.get("subject_token")
    token_type = form.get("subject_token_type")
    if not subject_token or not token_type:
        raise OAuthError("invalid_request", "subject_token and subject_token_type are required.")
    if token_type not in SUBJECT_TOKEN_TYPES:
        raise OAuthError(
            "invalid_request",
            "subject_token_type must be one of: " + ", ".join(sorted(SUBJECT_TOKEN_TYPES)),
        )
    kind, external = SUBJECT_TOKEN_TYPES[token_type]
    model: Any = Clinician if kind is Context.clinician else Client
    key_column = model.external_id if external else model.id
    subject = await session.scalar(
        select(model.id).where(model.tenant_id == client.tenant_id, key_column == subject_token)
    )
    if subject is None:
        raise OAuthError("invalid_grant", f"No such {kind} in this tenant.")
    allowed = ScopeSet.parse(client.allowed_scopes).only(kind).intersect(ROLE_SCOPES[kind])
    requested = _requested(form.get("scope"))
    if requested is not None and requested.contexts() - {kind}:
        raise OAuthError("invalid_scope", f"A {kind} token carries only {kind}/ scopes.")
    return Grant(kind, subject, _narrow(requested, allowed))


# Revocation (RFC 7009) and introspection (RFC 7662) of our own tokens.


async def tenants_token(
    tokens: TokenService, client: OAuthClient, token: str
) -> VerifiedToken | None:
    """The token, verified, if it is one of ours for the calling client's tenant; None for
    anything else (another tenant's, an identity provider's, expired, forged), which both
    endpoints answer as if it were unknown: a client learns nothing of other tenants' tokens."""
    try:
        verified = await tokens.verify(token)
    except InvalidToken:
        return None
    if verified.subject_is_external or verified.tenant_id != client.tenant_id:
        return None
    return verified


async def revoke_token(session: AsyncSession, settings: Settings, verified: VerifiedToken) -> None:
    # Kept until the token would have expired anyway (with the leeway verification allows).
    forget_after = datetime.fromtimestamp(
        verified.expires_at + settings.token_leeway_seconds + 1, UTC
    )
    await revocations.revoke(
        session, verified.tenant_id, RevokedKind.token, verified.token_id, forget_after
    )


async def introspect(
    session: AsyncSession, settings: Settings, verified: VerifiedToken, token: str
) -> dict[str, Any]:
    """RFC 7662's answer for a token of the tenant: inactive if anything revoked it. Read from
    the database, not the process's copy: an introspection answers for the present."""
    keys = {
        RevokedKind.token: verified.token_id,
        RevokedKind.oauth_client: verified.client_id,
        RevokedKind.subject: revocations.subject_key(verified.kind.value, verified.subject),
    }
    if await revocations.revoked_kinds(session, verified.tenant_id, keys):
        return {"active": False}
    # The signature was verified: its claims can be read as they are.
    claims = jwt.get_unverified_claims(token)
    return {
        "active": True,
        "scope": str(verified.scopes),
        "client_id": verified.client_id,
        "token_type": "Bearer",
        "exp": verified.expires_at,
        "iat": claims.get("iat"),
        "nbf": claims.get("nbf"),
        "sub": verified.subject,
        "aud": settings.audience,
        "iss": settings.issuer,
        "jti": verified.token_id,
        "tenant_id": verified.tenant_id,
        "subject_kind": verified.kind.value,
    }
