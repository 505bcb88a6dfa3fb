"""The template catalogue: the built-ins every tenant shares, and each tenant's own.

A template's content lives in immutable numbered versions; `Template.latest_version` names the
newest. Versions are never changed or deleted, and retiring a template only stops new
assignments: an assignment keeps the version it was made from, whatever happens later.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed, field_error
from app.core.ids import new_id
from app.core.pagination import decode_cursor, page_of, paginate
from app.core.security import Principal
from app.models import Template, TemplateVersion
from app.models.base import utcnow
from app.schemas.templates import TemplateCreate, TemplateVersionCreate
from app.services.response_schema import check_schema

CUSTOM = "custom"
_VERSION_CURSOR = re.compile(r"[0-9]{1,9}")


class TemplateWithVersion(NamedTuple):
    """A template and the version whose content is shown with it."""

    template: Template
    version: TemplateVersion


def visible_templates(principal: Principal) -> ColumnElement[bool]:
    """Built-ins are everyone's; a custom template is seen only within its own tenant."""
    return Template.tenant_id.is_(None) | (Template.tenant_id == principal.tenant_id)


def _with_latest_version(principal: Principal) -> Select[Template, TemplateVersion]:
    """Visible templates, each joined to its latest version: one statement however many
    templates, never one query per row."""
    return (
        select(Template, TemplateVersion)
        .join(
            TemplateVersion,
            and_(
                TemplateVersion.template_id == Template.id,
                TemplateVersion.number == Template.latest_version,
            ),
        )
        .where(visible_templates(principal))
    )


async def list_templates(
    session: AsyncSession,
    principal: Principal,
    *,
    kind: str | None,
    include_retired: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[TemplateWithVersion], str | None]:
    statement = _with_latest_version(principal)
    if kind is not None:
        statement = statement.where(Template.kind == kind)
    if not include_retired:
        statement = statement.where(Template.retired_at.is_(None))
    # paginate() is typed for one-entity selects; the SQL it adds works for any.
    paged = paginate(cast("Select[Any]", statement), Template.id, limit, cursor)
    rows = (await session.execute(paged)).all()
    page, next_cursor = page_of(rows, limit, lambda row: row[0].id)
    return [TemplateWithVersion(row[0], row[1]) for row in page], next_cursor


async def get_template(
    session: AsyncSession, principal: Principal, template_id: str, *, version: int | None = None
) -> TemplateWithVersion:
    """The template with its latest version, or with version number `version`."""
    if version is None:
        statement = _with_latest_version(principal)
    else:
        # An outer join, so that an unknown version and an unknown template are told apart.
        statement = (
            select(Template, TemplateVersion)
            .outerjoin(
                TemplateVersion,
                and_(TemplateVersion.template_id == Template.id, TemplateVersion.number == version),
            )
            .where(visible_templates(principal))
        )
    row = (await session.execute(statement.where(Template.id == template_id))).first()
    if row is None:
        raise NotFound("No such template.")
    template, shown = row
    # Typed as the inner join's, but the outer join's row may lack the version.
    if shown is None:
        raise NotFound("This template has no such version.")
    return TemplateWithVersion(template, shown)


async def list_versions(
    session: AsyncSession,
    principal: Principal,
    template_id: str,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[TemplateVersion], str | None]:
    """Every version, newest first. Paged by number, which is the true order of versions (ids
    sort by the clock of whichever process made them)."""
    template = await _visible_template(session, principal, template_id)
    statement = select(TemplateVersion).where(TemplateVersion.template_id == template.id)
    if cursor:
        statement = statement.where(TemplateVersion.number < _version_cursor(cursor))
    statement = statement.order_by(TemplateVersion.number.desc()).limit(limit + 1)
    rows = (await session.scalars(statement)).all()
    return page_of(rows, limit, lambda v: str(v.number))


async def get_assignable_version(
    session: AsyncSession, principal: Principal, template_id: str
) -> TemplateVersion:
    """The version a new assignment of `template_id` is made from: the latest one.

    NotFound if the caller's tenant cannot see the template; Conflict if it is retired.
    """
    row = (
        await session.execute(_with_latest_version(principal).where(Template.id == template_id))
    ).first()
    if row is None:
        raise NotFound("No such template.")
    template, version = row
    if template.retired_at is not None:
        raise Conflict("the template is retired")
    return version


async def create_template(
    session: AsyncSession, principal: Principal, body: TemplateCreate
) -> TemplateWithVersion:
    _check_response_schema(body.response_schema)
    template = Template(
        id=new_id("tpl"), tenant_id=principal.tenant_id, kind=CUSTOM, latest_version=1
    )
    version = TemplateVersion(template_id=template.id, number=1, **body.model_dump())
    session.add_all([template, version])
    await session.flush()
    return TemplateWithVersion(template, version)


async def get_changeable_template(
    session: AsyncSession, principal: Principal, template_id: str
) -> Template:
    """A template the caller's tenant owns. Built-ins are seen by all and changed by none."""
    template = await _visible_template(session, principal, template_id)
    if template.tenant_id is None:
        raise Forbidden("built-in templates are read-only; create a custom template instead")
    return template


async def add_version(
    session: AsyncSession, template: Template, body: TemplateVersionCreate
) -> TemplateWithVersion:
    if template.retired_at is not None:
        raise Conflict("the template is retired")
    _check_response_schema(body.response_schema)
    number = template.latest_version + 1
    version = TemplateVersion(template_id=template.id, number=number, **body.model_dump())
    session.add(version)
    template.latest_version = number
    try:
        # The template's version column guards the update: of two concurrent new versions,
        # the second finds the row changed (or its number taken) instead of overwriting.
        await session.flush()
    except (IntegrityError, StaleDataError) as exc:
        raise Conflict("The template changed at the same time; read it again.") from exc
    return TemplateWithVersion(template, version)


async def retire_template(session: AsyncSession, template: Template) -> Template:
    """Stops new assignments; nothing is deleted. Retiring twice changes nothing."""
    if template.retired_at is None:
        template.retired_at = utcnow()
        try:
            await session.flush()
        except StaleDataError as exc:
            raise Conflict("The template changed at the same time; read it again.") from exc
    return template


async def _visible_template(
    session: AsyncSession, principal: Principal, template_id: str
) -> Template:
    template = await session.scalar(
        select(Template).where(visible_templates(principal), Template.id == template_id)
    )
    if template is None:
        raise NotFound("No such template.")
    return template


def _check_response_schema(schema: dict[str, Any]) -> None:
    issues = check_schema(schema)
    if issues:
        errors: list[FieldError] = [
            field_error("body", ["response_schema", *_segments(i.pointer)], i.message, i.code)
            for i in issues
        ]
        raise ValidationFailed(
            "The response schema is outside the supported subset.", errors=errors
        )


def _segments(pointer: str) -> list[str]:
    """RFC 6901 pointer to its unescaped segments (field_error escapes them again)."""
    if not pointer:
        return []
    return [s.replace("~1", "/").replace("~0", "~") for s in pointer[1:].split("/")]


def _version_cursor(cursor: str) -> int:
    raw = decode_cursor(cursor)
    if not _VERSION_CURSOR.fullmatch(raw):
        raise ValidationFailed.for_field("query", ["cursor"], "The cursor is not valid.", "cursor")
    return int(raw)
