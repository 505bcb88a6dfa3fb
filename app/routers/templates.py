from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Path, Query, Response

from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.etags import IfMatchHeader, check_if_match, set_etag
from app.core.operation_outcome import FHIR_MEDIA_TYPE
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.fhir.examples import IMPORTABLE_QUESTIONNAIRE
from app.fhir.questionnaire_import import template_from_questionnaire
from app.models import TemplateVersion
from app.schemas.templates import (
    TemplateCreate,
    TemplateKind,
    TemplateOut,
    TemplateVersionCreate,
    TemplateVersionOut,
)
from app.services import templates
from app.services.templates import TemplateWithVersion

router = APIRouter(prefix="/v1/templates", tags=["templates"], route_class=AppRoute)
TemplateId = Annotated[str, Path(max_length=40)]
# Version numbers are stored as 32-bit integers; a larger one cannot exist.
VersionNumber = Annotated[int, Query(ge=1, le=2**31 - 1, description="Show this version.")]


def template_out(shown: TemplateWithVersion) -> TemplateOut:
    template, version = shown
    return TemplateOut(
        id=template.id,
        kind=cast(TemplateKind, template.kind),
        builtin=template.tenant_id is None,
        name=version.name,
        instructions=version.instructions,
        purpose=version.purpose,
        estimated_minutes=version.estimated_minutes,
        response_schema=version.response_schema,
        default_reminder_local_times=version.default_reminder_local_times,
        version=version.number,
        version_id=version.id,
        latest_version=template.latest_version,
        retired_at=template.retired_at,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def version_out(version: TemplateVersion) -> TemplateVersionOut:
    return TemplateVersionOut(
        id=version.id,
        template_id=version.template_id,
        version=version.number,
        name=version.name,
        instructions=version.instructions,
        purpose=version.purpose,
        estimated_minutes=version.estimated_minutes,
        response_schema=version.response_schema,
        default_reminder_local_times=version.default_reminder_local_times,
        created_at=version.created_at,
    )


@router.post(
    "",
    status_code=201,
    operation_id="create_template",
    summary="Create a custom template",
    description="The template's `kind` is `custom`; the body is its version 1. The response "
    "schema must stay within the supported JSON Schema subset: each construct outside it is "
    "named in `errors[]` by a pointer such as `/response_schema/properties/mood/pattern`.",
    responses=problem_responses(401, 403, 422),
)
async def create_template(
    body: TemplateCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("templates", "c")],
) -> TemplateOut:
    shown = await templates.create_template(session, principal, body)
    set_etag(response, shown.template.id, shown.template.version)
    return template_out(shown)


@router.post(
    "/from-questionnaire",
    status_code=201,
    operation_id="import_questionnaire",
    summary="Create a custom template from a FHIR R4 Questionnaire",
    description="The Questionnaire's items become the response schema (docs/FHIR.md lists "
    "how each maps): `string`, `text`, `integer`, `decimal`, `boolean`, `choice` of "
    "`valueString` or `valueInteger` options, `group` and `repeats`. Whatever a template "
    "cannot say (conditional items, value sets, codings as answers, other item types, a "
    "linkId that is not a property name) is refused with a 422 whose `errors[]` name the "
    "item by its `linkId` and point at it. `title` becomes the name, `description` the "
    "instructions and `purpose` the purpose.",
    responses=problem_responses(401, 403, 422),
)
async def import_questionnaire(
    body: Annotated[
        dict[str, Any],
        Body(
            media_type=FHIR_MEDIA_TYPE,
            description="A FHIR R4 Questionnaire (`application/fhir+json` or JSON).",
            examples=[IMPORTABLE_QUESTIONNAIRE],
        ),
    ],
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("templates", "c")],
) -> TemplateOut:
    shown = await templates.create_template(session, principal, template_from_questionnaire(body))
    set_etag(response, shown.template.id, shown.template.version)
    return template_out(shown)


@router.get(
    "",
    operation_id="list_templates",
    summary="List the built-in templates and your own",
    description="Each with its latest version. Built-ins come first (their ids are names, not "
    "times), then your own, newest first.",
    responses=problem_responses(401, 403, 422),
)
async def list_templates(
    session: SessionDep,
    principal: Annotated[Principal, require("templates", "s")],
    kind: Annotated[TemplateKind | None, Query(description="Only this kind.")] = None,
    include_retired: Annotated[
        bool, Query(description="Also the retired ones, which cannot be assigned.")
    ] = False,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[TemplateOut]:
    items, next_cursor = await templates.list_templates(
        session,
        principal,
        kind=kind,
        include_retired=include_retired,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[template_out(shown) for shown in items], next_cursor=next_cursor)


@router.get(
    "/{template_id}",
    operation_id="get_template",
    summary="Read a template",
    description="With its latest version, or with the version `?version=` names.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_template(
    template_id: TemplateId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("templates", "r")],
    version: VersionNumber | None = None,
) -> TemplateOut:
    shown = await templates.get_template(session, principal, template_id, version=version)
    set_etag(response, shown.template.id, shown.template.version)
    return template_out(shown)


@router.get(
    "/{template_id}/versions",
    operation_id="list_template_versions",
    summary="Every version of a template, newest first",
    description="For a built-in template or one of your own; another tenant's answers 404. "
    "Clients may read it too. Paged by version number.",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_template_versions(
    template_id: TemplateId,
    session: SessionDep,
    principal: Annotated[Principal, require("templates", "r")],
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[TemplateVersionOut]:
    items, next_cursor = await templates.list_versions(
        session, principal, template_id, limit=limit, cursor=cursor
    )
    return Page(data=[version_out(v) for v in items], next_cursor=next_cursor)


@router.post(
    "/{template_id}/versions",
    status_code=201,
    operation_id="create_template_version",
    summary="Publish a new version of a custom template",
    description="The body is the whole new version. Earlier versions stay unchanged for the "
    "assignments made from them; new assignments get this one. Built-in templates are "
    "read-only (403); a retired template gets no new versions (409).",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def create_template_version(
    template_id: TemplateId,
    body: TemplateVersionCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("templates", "u")],
    if_match: IfMatchHeader = None,
) -> TemplateOut:
    template = await templates.get_changeable_template(session, principal, template_id)
    check_if_match(if_match, template.id, template.version)
    shown = await templates.add_version(session, template, body)
    set_etag(response, shown.template.id, shown.template.version)
    return template_out(shown)


@router.delete(
    "/{template_id}",
    status_code=204,
    operation_id="retire_template",
    summary="Retire a custom template",
    description="It can no longer be assigned and leaves the default list; nothing is "
    "deleted, and assignments made from it keep their version. Retiring a retired template "
    "answers 204 again.",
    responses=problem_responses(401, 403, 404, 412),
)
async def retire_template(
    template_id: TemplateId,
    session: SessionDep,
    principal: Annotated[Principal, require("templates", "d")],
    if_match: IfMatchHeader = None,
) -> None:
    template = await templates.get_changeable_template(session, principal, template_id)
    # Already retired: what the caller asked for holds, so a retry whose If-Match predates
    # its own first attempt succeeds instead of answering 412.
    if template.retired_at is None:
        check_if_match(if_match, template.id, template.version)
    await templates.retire_template(session, template)
