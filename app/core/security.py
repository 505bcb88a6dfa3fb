"""Who is calling: the bearer token, verified, becomes a typed `Principal`; a route states the
scope it needs in one line with `require(resource, permission)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select

from app.core import metrics, rate_limits
from app.core.db import SessionDep
from app.core.errors import Forbidden, Unauthorized
from app.core.revocations import RevocationList, subject_key
from app.core.scopes import Context, ScopeSet
from app.core.tokens import InvalidToken, TokenService
from app.models import Client, Clinician


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    kind: Context
    subject_id: str
    """Our id of the clinician or client; for a system token, the OAuth client's id."""
    client_app_id: str
    token_id: str
    scopes: ScopeSet
    request_id: str | None = None
    ip: str | None = None

    @property
    def is_system(self) -> bool:
        return self.kind is Context.system

    @property
    def is_clinician(self) -> bool:
        return self.kind is Context.clinician

    @property
    def is_client(self) -> bool:
        return self.kind is Context.client


def _challenge(error: str | None = None, description: str | None = None, **params: str) -> str:
    parts = ['Bearer realm="homework"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    parts.extend(f'{key}="{value}"' for key, value in params.items())
    return ", ".join(parts)


def invalid_token(description: str) -> Unauthorized:
    return Unauthorized(
        description,
        headers={"WWW-Authenticate": _challenge("invalid_token", description)},
        error="invalid_token",
    )


async def authenticate(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "A bearer access token is required.", headers={"WWW-Authenticate": _challenge()}
        )
    tokens: TokenService = request.app.state.tokens
    try:
        verified = await tokens.verify(token.strip())
    except InvalidToken as exc:
        metrics.series(metrics.TOKEN_VERIFICATIONS, "unverified", exc.reason).inc()
        raise invalid_token(str(exc)) from exc
    issuer = "idp" if verified.subject_is_external else "ours"
    # After the signature, never instead of it: a forged token must not cost a reload.
    revocations: RevocationList = request.app.state.revocations
    await revocations.ensure_fresh()

    subject = verified.subject
    if verified.subject_is_external:
        model: Any = Clinician if verified.kind is Context.clinician else Client
        found = await session.scalar(
            select(model.id).where(
                model.tenant_id == verified.tenant_id, model.external_id == verified.subject
            )
        )
        if found is None:
            metrics.series(metrics.TOKEN_VERIFICATIONS, issuer, "unknown_subject").inc()
            raise invalid_token("the token's subject is not known to this tenant")
        subject = found
    refused = revocations.refusal(
        verified.token_id, verified.client_id, subject_key(verified.kind.value, subject)
    )
    if refused is not None:
        metrics.series(metrics.TOKEN_VERIFICATIONS, issuer, "revoked").inc()
        raise invalid_token(refused)
    metrics.series(metrics.TOKEN_VERIFICATIONS, issuer, "valid").inc()
    return Principal(
        tenant_id=verified.tenant_id,
        kind=verified.kind,
        subject_id=subject,
        client_app_id=verified.client_id,
        token_id=verified.token_id,
        scopes=verified.scopes,
        request_id=request.scope.get("state", {}).get("request_id"),
        ip=request.client.host if request.client else None,
    )


def require(resource: str, permission: str) -> Any:
    """The dependency a route uses to demand `{caller's context}/{resource}.{permission}`."""

    counted_as = rate_limits.route_class(resource, permission)

    async def check(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        # Counted before the scope check: a token refused every route is still held to its
        # budget.
        await rate_limits.count_api_request(
            request, principal.tenant_id, f"{principal.kind}:{principal.subject_id}", counted_as
        )
        if not principal.scopes.allows(principal.kind, resource, permission):
            needed = f"{principal.kind}/{resource}.{permission}"
            raise Forbidden(
                f"This token lacks the scope {needed}.",
                headers={"WWW-Authenticate": _challenge("insufficient_scope", scope=needed)},
                error="insufficient_scope",
                scope=needed,
            )
        return principal

    check.__name__ = f"require_{resource}_{permission}"
    check.required_scope = (resource, permission)  # type: ignore[attr-defined]  # for OpenAPI
    return Depends(check)
