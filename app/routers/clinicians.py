from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.etags import IfMatchHeader, check_if_match, set_etag
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import Clinician
from app.routers.dependencies import ExternalIdFilter
from app.schemas.people import ClinicianCreate, ClinicianOut, ClinicianUpdate
from app.services import people

router = APIRouter(prefix="/v1/clinicians", tags=["clinicians"], route_class=AppRoute)
ClinicianId = Annotated[str, Path(max_length=40)]


def _out(clinician: Clinician) -> ClinicianOut:
    return ClinicianOut.model_validate(clinician, from_attributes=True)


@router.post(
    "",
    status_code=201,
    operation_id="create_clinician",
    summary="Provision a clinician",
    description="For your backend (`system`). `external_id` is your own id for the clinician, "
    "unique in the tenant: a second clinician with the same one answers 409. A new clinician "
    "sees no client until your backend puts them on a care team.",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_clinician(
    body: ClinicianCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("clinicians", "c")],
) -> ClinicianOut:
    clinician = await people.create_clinician(session, principal, body)
    set_etag(response, clinician.id, clinician.version)
    return _out(clinician)


@router.get(
    "",
    operation_id="list_clinicians",
    summary="List the clinicians you may see",
    description="Your backend sees every clinician in the tenant; a clinician sees themself and "
    "the clinicians who share a client with them. `external_id` finds one by your own id. "
    "Newest first, paged by `cursor`.",
    responses=problem_responses(401, 403, 422),
)
async def list_clinicians(
    session: SessionDep,
    principal: Annotated[Principal, require("clinicians", "s")],
    external_id: ExternalIdFilter = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ClinicianOut]:
    items, next_cursor = await people.list_clinicians(
        session, principal, external_id=external_id, limit=limit, cursor=cursor
    )
    return Page(data=[_out(c) for c in items], next_cursor=next_cursor)


@router.get(
    "/{clinician_id}",
    operation_id="get_clinician",
    summary="Read a clinician",
    description="Your backend reads any clinician in the tenant, a clinician themself and those "
    "who share a client with them, a client the clinicians on their care team; anyone else gets "
    "404. Send the `ETag` back as `If-Match` when you change it.",
    responses=problem_responses(401, 403, 404),
)
async def get_clinician(
    clinician_id: ClinicianId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("clinicians", "r")],
) -> ClinicianOut:
    clinician = await people.get_clinician(session, principal, clinician_id)
    set_etag(response, clinician.id, clinician.version)
    return _out(clinician)


@router.patch(
    "/{clinician_id}",
    operation_id="update_clinician",
    summary="Change a clinician",
    description="For your backend (`system`). Only the fields sent change; an `external_id` "
    "another clinician has answers 409, and a stale `If-Match` 412.",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_clinician(
    clinician_id: ClinicianId,
    body: ClinicianUpdate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("clinicians", "u")],
    if_match: IfMatchHeader = None,
) -> ClinicianOut:
    clinician = await people.get_clinician(session, principal, clinician_id)
    check_if_match(if_match, clinician.id, clinician.version)
    clinician = await people.update_clinician(session, principal, clinician, body)
    set_etag(response, clinician.id, clinician.version)
    return _out(clinician)


@router.delete(
    "/{clinician_id}",
    status_code=204,
    operation_id="delete_clinician",
    summary="Remove a clinician (and their care-team memberships)",
    description="For your backend (`system`). The clinician leaves every care team, so they see "
    "none of those clients from now on; the assignments they made stay, with `clinician_id` "
    "null. A stale `If-Match` answers 412.",
    responses=problem_responses(401, 403, 404, 412),
)
async def delete_clinician(
    clinician_id: ClinicianId,
    session: SessionDep,
    principal: Annotated[Principal, require("clinicians", "d")],
    if_match: IfMatchHeader = None,
) -> None:
    clinician = await people.get_clinician(session, principal, clinician_id)
    check_if_match(if_match, clinician.id, clinician.version)
    await people.delete_clinician(session, clinician)
