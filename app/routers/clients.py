from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.etags import IfMatchHeader, check_if_match, set_etag
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import Client
from app.routers.clinicians import _out as clinician_out
from app.routers.dependencies import ExternalIdFilter
from app.schemas.people import (
    CareTeamMemberAdd,
    CareTeamOut,
    ClientCreate,
    ClientOut,
    ClientUpdate,
    QuietHours,
)
from app.services import people
from app.services.audit import Action

router = APIRouter(prefix="/v1/clients", tags=["clients"], route_class=AppRoute)
# Changing a care team changes which clients a clinician may see: it needs `clinicians.u`,
# which only the vendor's backend holds (a client's `clients.u` covers its own preferences).
ClientId = Annotated[str, Path(max_length=40)]


def _out(client: Client) -> ClientOut:
    quiet = (
        QuietHours(start=client.quiet_hours_start, end=client.quiet_hours_end)
        if client.quiet_hours_start and client.quiet_hours_end
        else None
    )
    return ClientOut(
        id=client.id,
        external_id=client.external_id,
        display_name=client.display_name,
        time_zone=client.time_zone,
        locale=client.locale,
        quiet_hours=quiet,
        next_session_at=client.next_session_at,
        reminders_muted=client.reminders_muted,
        max_reminders_per_day=client.max_reminders_per_day,
        created_at=client.created_at,
        updated_at=client.updated_at,
    )


@router.post(
    "",
    status_code=201,
    operation_id="create_client",
    summary="Provision a client",
    description="For your backend (`system`). `external_id` is your own id for the client, "
    "unique in the tenant (409 otherwise); `time_zone` must be an IANA name (422 naming "
    "`/time_zone`). Recurring homework and reminders follow the client's time zone and quiet "
    "hours.",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_client(
    body: ClientCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("clients", "c")],
) -> ClientOut:
    client = await people.create_client(session, principal, body)
    set_etag(response, client.id, client.version)
    return _out(client)


@router.get(
    "",
    operation_id="list_clients",
    summary="List the clients you may see",
    description="Your backend sees every client in the tenant, a clinician the clients on their "
    "care teams. `external_id` finds one by your own id. Newest first; each client listed is "
    "recorded in the audit trail.",
    responses=problem_responses(401, 403, 422),
)
async def list_clients(
    session: SessionDep,
    principal: Annotated[Principal, require("clients", "s")],
    external_id: ExternalIdFilter = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ClientOut]:
    items, next_cursor = await people.list_clients(
        session, principal, external_id=external_id, limit=limit, cursor=cursor
    )
    return Page(data=[_out(c) for c in items], next_cursor=next_cursor)


@router.get(
    "/{client_id}",
    operation_id="get_client",
    summary="Read a client",
    description="Your backend reads any client in the tenant, a clinician the clients on their "
    "care teams, a client only themself; anyone else gets 404. The read is audited; send the "
    "`ETag` back as `If-Match` when you change the client.",
    responses=problem_responses(401, 403, 404),
)
async def get_client(
    client_id: ClientId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("clients", "r")],
) -> ClientOut:
    client = await people.get_client(session, principal, client_id)
    set_etag(response, client.id, client.version)
    return _out(client)


@router.patch(
    "/{client_id}",
    operation_id="update_client",
    summary="Change a client, or a client's own preferences",
    description="Only the fields sent change. Your backend may change any field, a client its "
    "own display name, time zone, locale, quiet hours and reminder settings, a clinician only "
    "`next_session_at`; any other field answers 403, a stale `If-Match` 412. A new time zone or "
    "session time moves the occurrences that have not opened yet, and a new time zone, quiet "
    "hours or mute replans the reminders still ahead.",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_client(
    client_id: ClientId,
    body: ClientUpdate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("clients", "u")],
    now: NowDep,
    if_match: IfMatchHeader = None,
) -> ClientOut:
    client = await people.get_client(session, principal, client_id, action=Action.update)
    check_if_match(if_match, client.id, client.version)
    client = await people.update_client(session, principal, client, body, now)
    set_etag(response, client.id, client.version)
    return _out(client)


@router.delete(
    "/{client_id}",
    status_code=204,
    operation_id="erase_client",
    summary="Erase a client and all their data",
    description="Deletes the client and everything that is theirs; the audit trail keeps "
    "the fact of the erasure, by id only.",
    responses=problem_responses(401, 403, 404, 412),
)
async def erase_client(
    client_id: ClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("clients", "d")],
    if_match: IfMatchHeader = None,
) -> None:
    client = await people.get_client(session, principal, client_id, action=Action.erase)
    check_if_match(if_match, client.id, client.version)
    await people.erase_client(session, principal, client)


@router.get(
    "/{client_id}/care-team",
    operation_id="get_care_team",
    summary="The clinicians treating a client",
    description="Whoever may read the client sees its care team: your backend, the clinicians "
    "on it and the client themself; anyone else gets 404.",
    responses=problem_responses(401, 403, 404),
)
async def get_care_team(
    client_id: ClientId,
    session: SessionDep,
    principal: Annotated[Principal, require("clients", "r")],
) -> CareTeamOut:
    client = await people.get_client(session, principal, client_id)
    members = await people.care_team(session, client)
    return CareTeamOut(client_id=client.id, clinicians=[clinician_out(c) for c in members])


@router.post(
    "/{client_id}/care-team",
    status_code=201,
    operation_id="add_care_team_member",
    summary="Put a clinician on a client's care team",
    description="For your backend (`system`). The care team decides which clients a clinician "
    "sees. Adding a clinician already on the team changes nothing, and the answer is the whole "
    "team; an unknown clinician answers 404.",
    responses=problem_responses(401, 403, 404, 422),
)
async def add_care_team_member(
    client_id: ClientId,
    body: CareTeamMemberAdd,
    session: SessionDep,
    principal: Annotated[Principal, require("clinicians", "u")],
) -> CareTeamOut:
    client = await people.get_client(session, principal, client_id, action=Action.update)
    await people.add_to_care_team(session, principal, client, body.clinician_id)
    members = await people.care_team(session, client)
    return CareTeamOut(client_id=client.id, clinicians=[clinician_out(c) for c in members])


@router.delete(
    "/{client_id}/care-team/{clinician_id}",
    status_code=204,
    operation_id="remove_care_team_member",
    summary="Take a clinician off a client's care team",
    description="For your backend (`system`). The clinician no longer sees the client from the "
    "next request on; the assignments they made stay. 404 if the clinician is not on the team.",
    responses=problem_responses(401, 403, 404),
)
async def remove_care_team_member(
    client_id: ClientId,
    clinician_id: Annotated[str, Path(max_length=40)],
    session: SessionDep,
    principal: Annotated[Principal, require("clinicians", "u")],
) -> None:
    client = await people.get_client(session, principal, client_id, action=Action.update)
    await people.remove_from_care_team(session, principal, client, clinician_id)
