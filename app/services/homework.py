"""The client's "today": what is open in their local day, with what it asks and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, NotFound
from app.core.security import Principal
from app.models import Assignment, Client, Occurrence, TemplateVersion
from app.services import audit
from app.services.audit import Action
from app.services.recurrence import local_to_utc

# What a client can still act on today. Missed, declined and cancelled work is not "to do".
ACTIONABLE = ("open", "started", "upcoming", "completed", "partial")


@dataclass(frozen=True)
class Today:
    date: str
    time_zone: str
    items: list[tuple[Occurrence, Assignment, TemplateVersion]]


async def today(session: AsyncSession, principal: Principal, now: datetime) -> Today:
    if not principal.is_client:
        raise Forbidden("Only a client token has homework: use /v1/assignments instead.")
    client = await session.scalar(
        select(Client).where(
            Client.id == principal.subject_id, Client.tenant_id == principal.tenant_id
        )
    )
    if client is None:
        raise NotFound("No such client.")
    local_now = now.astimezone(ZoneInfo(client.time_zone))
    day_start = local_to_utc(datetime.combine(local_now.date(), time()), client.time_zone)
    day_end = local_to_utc(
        datetime.combine(local_now.date() + timedelta(days=1), time()), client.time_zone
    )
    # Windows that overlap the local day, from one indexed range on (client_id, closes_at).
    rows = (
        await session.execute(
            select(Occurrence, Assignment, TemplateVersion)
            .join(Assignment, Assignment.id == Occurrence.assignment_id)
            .join(TemplateVersion, TemplateVersion.id == Assignment.template_version_id)
            .where(
                Occurrence.client_id == client.id,
                Occurrence.closes_at > day_start,
                Occurrence.opens_at < day_end,
                Occurrence.status.in_(ACTIONABLE),
                Assignment.status == "active",
            )
            .order_by(Occurrence.due_at)
        )
    ).all()
    items = [(o, a, v) for o, a, v in rows]
    await audit.record(
        session, principal, Action.list, "occurrence", [(client.id, o.id) for o, _, _ in items]
    )
    return Today(local_now.date().isoformat(), client.time_zone, items)
