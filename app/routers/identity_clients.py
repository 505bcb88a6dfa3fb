"""The tenant's OAuth clients, for its backend (`system/identity`): list, describe, rotate a
secret with an overlap, revoke. Audited by the service, by id; secrets never are."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path

from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.schemas.oauth_clients import OAuthClientOut, RotatedClientOut, RotationIn
from app.services import tenants

router = APIRouter(prefix="/v1/identity/clients", tags=["identity"], route_class=AppRoute)
OAuthClientId = Annotated[str, Path(max_length=40)]


@router.get(
    "",
    operation_id="list_oauth_clients",
    summary="Your OAuth clients",
    description="For your backend (`system`). Every client of your tenant, revoked ones too, "
    "oldest first; never a secret.",
    responses=problem_responses(401, 403),
)
async def list_clients(
    session: SessionDep, principal: Annotated[Principal, require("identity", "s")]
) -> list[OAuthClientOut]:
    return [OAuthClientOut.of(c) for c in await tenants.list_oauth_clients(session, principal)]


@router.get(
    "/{oauth_client_id}",
    operation_id="get_oauth_client",
    summary="One of your OAuth clients",
    description="For your backend (`system`). 404 for another tenant's.",
    responses=problem_responses(401, 403, 404),
)
async def get_client(
    oauth_client_id: OAuthClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("identity", "r")],
) -> OAuthClientOut:
    return OAuthClientOut.of(await tenants.get_oauth_client(session, principal, oauth_client_id))


@router.post(
    "/{oauth_client_id}/rotate",
    operation_id="rotate_oauth_client_secret",
    summary="Rotate an OAuth client's secret",
    description="For your backend (`system`). Returns the new secret, this once (we keep only "
    "its hash). The old one keeps working for `old_secret_expires_in` seconds (default 24 h) "
    "so that every instance of your backend can switch; a second rotation ends the first one's "
    "overlap at once. Tokens already issued keep working until they expire: to end them too, "
    "revoke the client. 409 for a revoked client.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def rotate_secret(
    oauth_client_id: OAuthClientId,
    body: RotationIn,
    session: SessionDep,
    principal: Annotated[Principal, require("identity", "u")],
) -> RotatedClientOut:
    client = await tenants.find_oauth_client(session, principal, oauth_client_id)
    overlap = timedelta(seconds=body.old_secret_expires_in)
    secret = await tenants.rotate_secret(session, principal, client, overlap)
    return RotatedClientOut(**OAuthClientOut.of(client).model_dump(), client_secret=secret)


@router.post(
    "/{oauth_client_id}/revoke",
    operation_id="revoke_oauth_client",
    summary="Revoke an OAuth client",
    description="For your backend (`system`). For good: none of its secrets is accepted any "
    "more, and every token it obtained (system tokens, and the clinician and client tokens it "
    "exchanged for) is `401 invalid_token` from the next request on, within 2 seconds in every "
    "API process. Revoking a revoked client changes nothing. A token of the client itself may "
    "revoke it, and is refused from then on.",
    responses=problem_responses(401, 403, 404),
)
async def revoke_client(
    oauth_client_id: OAuthClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("identity", "d")],
) -> OAuthClientOut:
    client = await tenants.find_oauth_client(session, principal, oauth_client_id)
    await tenants.revoke_client(session, principal, client)
    return OAuthClientOut.of(client)
