"""Keeps the built-in templates in the database in step with the catalogue in code.

Built-ins are rows like any tenant's template (tenant_id NULL), so that an assignment points at
the exact version it was made from. A catalogue entry whose version number is newer than the
database's becomes a new version; older versions stay for the assignments that use them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Template, TemplateVersion
from app.services.template_catalog import BUILTIN_TEMPLATES, BuiltinTemplate


def builtin_template_id(kind: str) -> str:
    # Stable, readable ids: vendors may hard-code "tpl_builtin_mood_log" in their apps.
    return f"tpl_builtin_{kind}"


async def sync_builtin_templates(session: AsyncSession) -> int:
    """Add what the catalogue has that the database lacks; returns how many versions were added."""
    existing = {
        t.id: t
        for t in (await session.scalars(select(Template).where(Template.tenant_id.is_(None)))).all()
    }
    added = 0
    for kind, builtin in BUILTIN_TEMPLATES.items():
        template = existing.get(builtin_template_id(kind))
        if template is None:
            template = Template(
                id=builtin_template_id(kind), tenant_id=None, kind=kind, latest_version=0
            )
            session.add(template)
        if builtin.version > template.latest_version:
            session.add(version_row(template.id, builtin))
            template.latest_version = builtin.version
            added += 1
    await session.flush()
    return added


def version_row(template_id: str, builtin: BuiltinTemplate) -> TemplateVersion:
    """The catalogue entry as a (new, unsaved) version row of the template `template_id`."""
    return TemplateVersion(
        template_id=template_id,
        number=builtin.version,
        name=builtin.name,
        instructions=builtin.instructions,
        purpose=builtin.purpose,
        estimated_minutes=builtin.estimated_minutes,
        response_schema=builtin.response_schema_dict(),
        default_reminder_local_times=list(builtin.default_reminder_local_times),
    )
