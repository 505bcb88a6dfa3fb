from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from app.core.db import SessionDep
from app.core.errors import NotFound, problem_responses
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import IdentityProvider
from app.schemas.identity_providers import IdentityProviderIn, IdentityProviderOut
from app.services import identity_providers

router = APIRouter(prefix="/v1/identity-provider", tags=["identity"], route_class=AppRoute)


@router.put(
    "",
    operation_id="set_identity_provider",
    summary="Trust your own identity provider's access tokens",
    description="For your backend (`system`). Creates or replaces the configuration; within 30 "
    "seconds every API process accepts access tokens from this issuer for this audience, for "
    "your clinicians and clients found by your id in `external_id_claim`. `jwks_url` must be "
    "https on a public address; our own issuer, or one another tenant trusts, answers 422.",
    responses=problem_responses(401, 403, 422),
)
async def set_identity_provider(
    body: IdentityProviderIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("identity", "u")],
) -> IdentityProviderOut:
    provider = await identity_providers.save(
        session, request.app.state.settings, principal.tenant_id, body
    )
    request.app.state.issuers.forget()
    return IdentityProviderOut.model_validate(provider, from_attributes=True)


@router.get(
    "",
    operation_id="get_identity_provider",
    summary="The identity provider you trust, if any",
    description="For your backend (`system`). 404 while none is configured.",
    responses=problem_responses(401, 403, 404),
)
async def get_identity_provider(
    session: SessionDep, principal: Annotated[Principal, require("identity", "r")]
) -> IdentityProviderOut:
    provider = await session.get(IdentityProvider, principal.tenant_id)
    if provider is None:
        raise NotFound("No identity provider is configured.")
    return IdentityProviderOut.model_validate(provider, from_attributes=True)


@router.delete(
    "",
    status_code=204,
    operation_id="delete_identity_provider",
    summary="Stop trusting your identity provider",
    description="For your backend (`system`). Within 30 seconds every API process refuses tokens "
    "from your identity provider; tokens from our token endpoint are unaffected. 404 if none is "
    "configured.",
    responses=problem_responses(401, 403, 404),
)
async def delete_identity_provider(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("identity", "d")],
) -> None:
    provider = await session.get(IdentityProvider, principal.tenant_id)
    if provider is None:
        raise NotFound("No identity provider is configured.")
    await session.delete(provider)
    await session.flush()
    request.app.state.issuers.forget()


@router.post(
    "/refresh-keys",
    status_code=204,
    operation_id="refresh_identity_provider_keys",
    summary="Drop the cached keys of your identity provider and fetch its JWKS again",
    description="For your backend (`system`), when a signing key of your IdP is compromised: "
    "remove it from your JWKS first, then call this. The keys we hold are dropped at once in the "
    "API process that answers and within 30 seconds in every other; each fetches your JWKS again "
    "for the next token (regardless of the one-refetch-a-minute floor), and until a fetch "
    "succeeds no token of your IdP is accepted. `updated_at` of the configuration becomes the "
    "time of this refresh. 404 if none is configured.",
    responses=problem_responses(401, 403, 404),
)
async def refresh_identity_provider_keys(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("identity", "u")],
) -> None:
    provider = await identity_providers.mark_keys_distrusted(session, principal.tenant_id)
    if provider is None:
        raise NotFound("No identity provider is configured.")
    request.app.state.issuers.distrust_keys(provider)
