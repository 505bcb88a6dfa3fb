"""Adjustments: the client proposes a smaller or different step; the clinician accepts or
declines; an accepted one changes the assignment and its future occurrences."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.core.security import Principal
from app.models import Adjustment, Assignment, Client
from app.schemas.assignments import AdjustmentCreate
from app.services import assignments
from app.services.events import EventType, record_event
from app.services.schedules.occurrences import LOCAL_FORMAT
from app.services.schedules.recurrence import Recurrence, RecurrenceError


async def propose(
    session: AsyncSession,
    principal: Principal,
    assignment: Assignment,
    body: AdjustmentCreate,
    now: datetime,
) -> Adjustment:
    if not principal.is_client:
        raise Forbidden("Adjustments are the client's proposals; change the assignment instead.")
    if assignment.status != "active":
        raise Conflict(f"The assignment is {assignment.status}.")
    proposed = body.model_dump(exclude_unset=True, exclude={"note"}, exclude_none=True)
    if "rrule" in proposed:
        if assignment.schedule_type != "recurring":
            raise ValidationFailed.for_field(
                "body", ["rrule"], "only a recurring assignment has a rule", "not_recurring"
            )
        try:
            rule = Recurrence.parse(proposed["rrule"])
        except RecurrenceError as exc:
            raise ValidationFailed.for_field("body", ["rrule"], str(exc), "rrule") from exc
        client = await session.get(Client, assignment.client_id)
        assert client is not None and assignment.start_local is not None
        start_local = datetime.strptime(assignment.start_local, LOCAL_FORMAT)
        assignments.refuse_barren_series(rule, start_local, client, assignment, now, ["rrule"])
        proposed["rrule"] = rule.to_rrule()
    adjustment = Adjustment(
        tenant_id=assignment.tenant_id,
        assignment_id=assignment.id,
        client_id=assignment.client_id,
        note=body.note,
        proposed=proposed,
        status="proposed",
    )
    session.add(adjustment)
    await session.flush()
    record_event(
        session,
        assignment.tenant_id,
        EventType.adjustment_proposed,
        client_id=assignment.client_id,
        changed_fields=proposed,
        assignment_id=assignment.id,
        adjustment_id=adjustment.id,
    )
    return adjustment


async def list_for(session: AsyncSession, assignment: Assignment) -> Sequence[Adjustment]:
    return (
        await session.scalars(
            select(Adjustment)
            .where(Adjustment.assignment_id == assignment.id)
            .order_by(Adjustment.id.desc())
        )
    ).all()


async def resolve(
    session: AsyncSession,
    principal: Principal,
    assignment: Assignment,
    adjustment_id: str,
    *,
    accept: bool,
    note: str | None,
    now: datetime,
) -> Adjustment:
    if principal.is_client:
        raise Forbidden("The clinician accepts or declines a proposal.")
    adjustment = await session.scalar(
        select(Adjustment).where(
            Adjustment.id == adjustment_id, Adjustment.assignment_id == assignment.id
        )
    )
    if adjustment is None:
        raise NotFound("No such adjustment.")
    if adjustment.status != "proposed":
        raise Conflict(f"The adjustment was already {adjustment.status}.")
    if accept and assignment.status != "active":
        raise Conflict(f"The assignment is {assignment.status}.")
    adjustment.status = "accepted" if accept else "declined"
    adjustment.response_note = note
    adjustment.resolved_by = principal.subject_id
    adjustment.resolved_at = now
    if accept:
        await _apply(session, assignment, dict(adjustment.proposed), now)
    await session.flush()
    record_event(
        session,
        assignment.tenant_id,
        EventType.adjustment_resolved,
        client_id=assignment.client_id,
        changed_fields=["status"],
        assignment_id=assignment.id,
        adjustment_id=adjustment.id,
    )
    return adjustment


async def _apply(
    session: AsyncSession, assignment: Assignment, proposed: dict[str, object], now: datetime
) -> None:
    rrule = proposed.pop("rrule", None)
    changed = [field for field, value in proposed.items() if getattr(assignment, field) != value]
    for field in changed:
        setattr(assignment, field, proposed[field])
    if isinstance(rrule, str) and rrule != assignment.rrule:
        assignment.rrule = rrule
        changed.append("schedule")
        await assignments.reschedule_assignment(session, assignment, now, new_series=True)
    if changed:
        await session.flush()
        record_event(
            session,
            assignment.tenant_id,
            EventType.assignment_updated,
            client_id=assignment.client_id,
            changed_fields=changed,
            assignment_id=assignment.id,
        )
