"""The audit trail: one row per read or change of a client's data. References only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import Statement
from app.core.ids import new_id
from app.core.pagination import page_of, paginate
from app.core.security import Principal
from app.models import AuditEvent
from app.models.base import utcnow
from app.models.tables import AUDIT_EVENTS

_INSERT = Statement(insert(AUDIT_EVENTS))


class Action(StrEnum):
    read = "read"
    list = "list"
    create = "create"
    update = "update"
    delete = "delete"
    erase = "erase"
    import_ = "import"


async def record(
    session: AsyncSession,
    principal: Principal,
    action: Action,
    resource_type: str,
    items: Iterable[tuple[str | None, str | None]],
) -> None:
    """Append one audit event per `(client_id, resource_id)` in one statement."""
    now = utcnow()
    rows = [
        {
            "id": new_id("aud"),
            "tenant_id": principal.tenant_id,
            "occurred_at": now,
            "actor_kind": principal.kind.value,
            "actor_id": principal.subject_id,
            "client_app_id": principal.client_app_id,
            "token_id": principal.token_id,
            "client_id": client_id,
            "action": action.value,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "request_id": principal.request_id,
            "ip": principal.ip,
        }
        for client_id, resource_id in items
    ]
    if rows:
        # On the driver: every read pays for its audit row.
        await _INSERT.execute_many(session, rows)


async def search(
    session: AsyncSession,
    principal: Principal,
    *,
    client_id: str | None,
    actor_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AuditEvent], str | None]:
    statement = select(AuditEvent).where(AuditEvent.tenant_id == principal.tenant_id)
    if client_id is not None:
        statement = statement.where(AuditEvent.client_id == client_id)
    if actor_id is not None:
        statement = statement.where(AuditEvent.actor_id == actor_id)
    if since is not None:
        statement = statement.where(AuditEvent.occurred_at >= since)
    if until is not None:
        statement = statement.where(AuditEvent.occurred_at < until)
    rows = (await session.scalars(paginate(statement, AuditEvent.id, limit, cursor))).all()
    return page_of(rows, limit, lambda e: e.id)
