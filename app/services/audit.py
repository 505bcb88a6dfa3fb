"""The audit trail: one row per read or change of a client's data, and per refusal of one to a
caller of the tenant. References only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.after_rollback import keep_past_rollback
from app.core.driver import Statement
from app.core.ids import new_id
from app.core.pagination import page_of, paginate
from app.core.security import Principal
from app.models import AuditEvent
from app.models.audit import Outcome
from app.models.base import utcnow
from app.models.tables import AUDIT_EVENTS
from app.services.access import CLIENT_OF

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
        _row(principal, action, resource_type, client_id, resource_id, Outcome.allowed, now)
        for client_id, resource_id in items
    ]
    if rows:
        # On the driver: every read pays for its audit row.
        await _INSERT.execute_many(session, rows)


def record_refusal(
    session: AsyncSession,
    principal: Principal,
    action: Action,
    resource_type: str,
    client_id: str | None,
    resource_id: str,
) -> None:
    """A `denied` event for an object of the caller's tenant that they were refused (404 or
    403), kept past the request's rollback: the refusal is the request's failure, and the row
    must not fail with it. References only: ids, never the request's body or query."""
    row = _row(principal, action, resource_type, client_id, resource_id, Outcome.denied, utcnow())

    async def write(session: AsyncSession) -> None:
        await _INSERT.execute_many(session, [row])

    keep_past_rollback(session, write)


async def record_refusal_if_hidden(
    session: AsyncSession,
    principal: Principal,
    action: Action,
    resource_type: str,
    resource_id: str,
) -> None:
    """Before a 404: if `resource_id` is a row of the caller's own tenant that their visibility
    hid, record the refusal. One lookup, on this failure path only.

    An id that is not the tenant's records nothing. Our ids are unguessable (80 random bits), so
    an insider cannot find the tenant's objects by enumerating; a miss is a typo, a deleted
    object or another tenant's id, and the last must stay invisible to both tenants: telling it
    apart would take a lookup across tenants, and its row (or its absence) would tell the
    caller's tenant that the id exists elsewhere. A system token sees its whole tenant, so its
    404 is always such a miss and skips the lookup.
    """
    if principal.is_system:
        return
    client_id_column = CLIENT_OF[resource_type]
    table = client_id_column.table
    client_id = await session.scalar(
        select(client_id_column).where(
            table.c.id == resource_id, table.c.tenant_id == principal.tenant_id
        )
    )
    if client_id is not None:
        record_refusal(session, principal, action, resource_type, client_id, resource_id)


def _row(
    principal: Principal,
    action: Action,
    resource_type: str,
    client_id: str | None,
    resource_id: str | None,
    outcome: Outcome,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id("aud"),
        "tenant_id": principal.tenant_id,
        "occurred_at": now,
        "actor_kind": principal.kind.value,
        "actor_id": principal.subject_id,
        "client_app_id": principal.client_app_id,
        "token_id": principal.token_id,
        "client_id": client_id,
        "action": action.value,
        "outcome": outcome.value,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "request_id": principal.request_id,
        "ip": principal.ip,
    }


async def search(
    session: AsyncSession,
    principal: Principal,
    *,
    client_id: str | None,
    actor_id: str | None,
    outcome: Outcome | None = None,
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
    if outcome is not None:
        # Inline, not a parameter: only then can PostgreSQL prove that `denied` lies within the
        # partial index of refusals (a prepared statement's generic plan could not).
        statement = statement.where(
            AuditEvent.outcome == bindparam("outcome", outcome.value, literal_execute=True)
        )
    if since is not None:
        statement = statement.where(AuditEvent.occurred_at >= since)
    if until is not None:
        statement = statement.where(AuditEvent.occurred_at < until)
    rows = (await session.scalars(paginate(statement, AuditEvent.id, limit, cursor))).all()
    return page_of(rows, limit, lambda e: e.id)
