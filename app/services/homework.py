"""The client's "today": what is open in their local day, with what it asks and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import Statement, columns_of, param
from app.core.errors import Forbidden, NotFound
from app.core.security import Principal
from app.models.tables import ASSIGNMENTS, CLIENTS, OCCURRENCES, TEMPLATE_VERSIONS
from app.services import audit
from app.services.audit import Action
from app.services.schedules.recurrence import local_to_utc

# What a client can still act on today. Missed, declined and cancelled work is not "to do".
ACTIONABLE = ("open", "started", "upcoming", "completed", "partial")


_CLIENT = Statement(
    select(*columns_of(CLIENTS)).where(
        CLIENTS.c.id == param("client_id"), CLIENTS.c.tenant_id == param("tenant_id")
    ),
    [CLIENTS],
)
# Windows that overlap the local day, from one indexed range on (client_id, closes_at).
_ITEMS = Statement(
    select(*columns_of(OCCURRENCES, ASSIGNMENTS, TEMPLATE_VERSIONS))
    .join(ASSIGNMENTS, ASSIGNMENTS.c.id == OCCURRENCES.c.assignment_id)
    .join(TEMPLATE_VERSIONS, TEMPLATE_VERSIONS.c.id == ASSIGNMENTS.c.template_version_id)
    .where(
        OCCURRENCES.c.client_id == param("client_id"),
        OCCURRENCES.c.closes_at > param("day_start"),
        OCCURRENCES.c.opens_at < param("day_end"),
        OCCURRENCES.c.status.in_(ACTIONABLE),
        ASSIGNMENTS.c.status == "active",
    )
    .order_by(OCCURRENCES.c.due_at),
    [OCCURRENCES, ASSIGNMENTS, TEMPLATE_VERSIONS],
)


@dataclass(frozen=True)
class Today:
    date: str
    time_zone: str
    items: list[tuple[Any, ...]]
    """(occurrence, assignment, template version) records."""


async def today(session: AsyncSession, principal: Principal, now: datetime) -> Today:
    if not principal.is_client:
        raise Forbidden("Only a client token has homework: use /v1/assignments instead.")
    found = await _CLIENT.fetch_one(
        session, client_id=principal.subject_id, tenant_id=principal.tenant_id
    )
    if found is None:
        raise NotFound("No such client.")
    (client,) = found
    local_now = now.astimezone(ZoneInfo(client.time_zone))
    day_start = local_to_utc(datetime.combine(local_now.date(), time()), client.time_zone)
    day_end = local_to_utc(
        datetime.combine(local_now.date() + timedelta(days=1), time()), client.time_zone
    )
    items = await _ITEMS.fetch(session, client_id=client.id, day_start=day_start, day_end=day_end)
    await audit.record(
        session, principal, Action.list, "occurrence", [(client.id, o.id) for o, _, _ in items]
    )
    return Today(local_now.date().isoformat(), client.time_zone, items)
