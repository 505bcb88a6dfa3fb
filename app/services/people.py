"""Clinicians, clients and care teams."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import revocations
from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.core.pagination import page_of, paginate
from app.core.scopes import Context
from app.core.security import Principal
from app.models import CareTeamMember, Client, Clinician
from app.models.revocations import RevokedKind
from app.schemas.people import ClientCreate, ClientUpdate, ClinicianCreate, ClinicianUpdate
from app.services import assignments, audit
from app.services.access import visible_clients, visible_clinicians
from app.services.audit import Action
from app.services.events import EventType, record_event
from app.services.reminders import service as reminders

# What each kind of caller may change on a client: the vendor everything; the client its own
# preferences; a clinician the next session time.
CLIENT_FIELDS_BY_KIND = {
    Context.system: frozenset(ClientUpdate.model_fields),
    Context.client: frozenset(
        {
            "display_name",
            "time_zone",
            "locale",
            "quiet_hours",
            "reminders_muted",
            "max_reminders_per_day",
        }
    ),
    Context.clinician: frozenset({"next_session_at"}),
}


async def _flush_unique(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A {what} with this external_id already exists.") from exc


def _refuse_nulls(changes: dict[str, Any], required: tuple[str, ...]) -> None:
    for name in required:
        if name in changes and changes[name] is None:
            raise ValidationFailed.for_field("body", [name], "may not be null", "null")


# What reminders are computed from: a change replans the client's reminders still ahead.
REMINDER_INPUTS = frozenset(
    {"time_zone", "quiet_hours_start", "quiet_hours_end", "reminders_muted"}
)


# Clinicians


async def create_clinician(
    session: AsyncSession, principal: Principal, body: ClinicianCreate
) -> Clinician:
    clinician = Clinician(tenant_id=principal.tenant_id, **body.model_dump())
    session.add(clinician)
    await _flush_unique(session, "clinician")
    return clinician


async def get_clinician(
    session: AsyncSession, principal: Principal, clinician_id: str
) -> Clinician:
    clinician = await session.scalar(
        visible_clinicians(principal).where(Clinician.id == clinician_id)
    )
    if clinician is None:
        raise NotFound("No such clinician.")
    return clinician


async def list_clinicians(
    session: AsyncSession,
    principal: Principal,
    *,
    external_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Clinician], str | None]:
    statement = visible_clinicians(principal)
    if external_id is not None:
        statement = statement.where(Clinician.external_id == external_id)
    rows = (await session.scalars(paginate(statement, Clinician.id, limit, cursor))).all()
    return page_of(rows, limit, lambda c: c.id)


async def update_clinician(
    session: AsyncSession, principal: Principal, clinician: Clinician, body: ClinicianUpdate
) -> Clinician:
    changes = body.model_dump(exclude_unset=True)
    _refuse_nulls(changes, ("external_id",))
    for field, value in changes.items():
        setattr(clinician, field, value)
    await _flush_unique(session, "clinician")
    return clinician


async def delete_clinician(session: AsyncSession, clinician: Clinician) -> None:
    """Their tokens die with them: until they expire they would still pass every scope check
    and read the tenant's templates (revocations are refused at authentication)."""
    await session.delete(clinician)
    await session.flush()
    await _revoke_tokens_of(session, clinician.tenant_id, Context.clinician, clinician.id)


async def _revoke_tokens_of(
    session: AsyncSession, tenant_id: str, kind: Context, subject_id: str
) -> None:
    await revocations.revoke(
        session, tenant_id, RevokedKind.subject, revocations.subject_key(kind.value, subject_id)
    )


# Clients


def _client_values(body: ClientCreate | ClientUpdate, fields: dict[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "quiet_hours" in values:
        hours = values.pop("quiet_hours")
        values["quiet_hours_start"] = hours["start"] if hours else None
        values["quiet_hours_end"] = hours["end"] if hours else None
    return values


async def create_client(session: AsyncSession, principal: Principal, body: ClientCreate) -> Client:
    client = Client(tenant_id=principal.tenant_id, **_client_values(body, body.model_dump()))
    session.add(client)
    await _flush_unique(session, "client")
    await audit.record(session, principal, Action.create, "client", [(client.id, client.id)])
    return client


async def get_client(
    session: AsyncSession, principal: Principal, client_id: str, *, action: Action = Action.read
) -> Client:
    client = await session.scalar(visible_clients(principal).where(Client.id == client_id))
    if client is None:
        await audit.record_refusal_if_hidden(session, principal, action, "client", client_id)
        raise NotFound("No such client.")
    await audit.record(session, principal, action, "client", [(client.id, client.id)])
    return client


async def list_clients(
    session: AsyncSession,
    principal: Principal,
    *,
    external_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Client], str | None]:
    statement = visible_clients(principal)
    if external_id is not None:
        statement = statement.where(Client.external_id == external_id)
    rows = (await session.scalars(paginate(statement, Client.id, limit, cursor))).all()
    clients, next_cursor = page_of(rows, limit, lambda c: c.id)
    await audit.record(session, principal, Action.list, "client", [(c.id, c.id) for c in clients])
    return clients, next_cursor


async def update_client(
    session: AsyncSession, principal: Principal, client: Client, body: ClientUpdate, now: datetime
) -> Client:
    changes = body.model_dump(exclude_unset=True)
    refused = sorted(set(changes) - CLIENT_FIELDS_BY_KIND[principal.kind])
    if refused:
        raise Forbidden(f"A {principal.kind} token may not change: {', '.join(refused)}.")
    _refuse_nulls(changes, ("external_id", "time_zone", "locale", "reminders_muted"))
    changed = set()
    for field, value in _client_values(body, changes).items():
        if getattr(client, field) != value:
            setattr(client, field, value)
            changed.add(field)
    await _flush_unique(session, "client")
    await assignments.follow_client_changes(session, client, changed, now)
    if changed & REMINDER_INPUTS:
        await reminders.resync_client(session, client, now)
    await audit.record(session, principal, Action.update, "client", [(client.id, client.id)])
    return client


async def erase_client(session: AsyncSession, principal: Principal, client: Client) -> None:
    """Delete the client and, through the foreign keys' cascades, everything that is theirs.
    The audit trail keeps the fact of the erasure, by id only."""
    await session.execute(delete(Client).where(Client.id == client.id))
    await _revoke_tokens_of(session, client.tenant_id, Context.client, client.id)
    record_event(session, client.tenant_id, EventType.client_erased, client_id=client.id)
    await audit.record(session, principal, Action.erase, "client", [(client.id, client.id)])


# Care teams


async def care_team(session: AsyncSession, client: Client) -> list[Clinician]:
    statement = (
        select(Clinician)
        .join(CareTeamMember, CareTeamMember.clinician_id == Clinician.id)
        .where(CareTeamMember.client_id == client.id)
        .order_by(Clinician.id)
    )
    return list((await session.scalars(statement)).all())


async def add_to_care_team(
    session: AsyncSession, principal: Principal, client: Client, clinician_id: str
) -> None:
    clinician = await get_clinician(session, principal, clinician_id)
    exists = await session.get(CareTeamMember, (client.id, clinician.id))
    if exists is None:
        session.add(
            CareTeamMember(
                client_id=client.id, clinician_id=clinician.id, tenant_id=client.tenant_id
            )
        )
        await session.flush()
    await audit.record(session, principal, Action.update, "care_team", [(client.id, clinician.id)])


async def remove_from_care_team(
    session: AsyncSession, principal: Principal, client: Client, clinician_id: str
) -> None:
    result = await session.execute(
        delete(CareTeamMember).where(
            CareTeamMember.client_id == client.id, CareTeamMember.clinician_id == clinician_id
        )
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound("That clinician is not on this client's care team.")
    await audit.record(session, principal, Action.update, "care_team", [(client.id, clinician_id)])
