"""Completions: what the client did for one occurrence, and what follows from it.

A completion moves its occurrence (`done` → completed, `partial` → partial, `not_done` →
declined), may end its assignment, is scored when it is a validated measure, and raises a
distress flag when the client reports feeling overwhelmed or an answer meets a template's
distress mark (PHQ-9 item 9 above 0 among them). Every version is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import Statement, columns_of, param, values_of
from app.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed, field_error
from app.core.ids import new_id
from app.core.pagination import page_of, paginate
from app.core.scopes import Context
from app.core.security import Principal
from app.models import (
    Assignment,
    Completion,
    CompletionRevision,
    Event,
    Occurrence,
    TemplateVersion,
)
from app.models.base import utcnow
from app.models.tables import (
    ASSIGNMENTS,
    CLIENTS,
    COMPLETION_REVISIONS,
    COMPLETIONS,
    OCCURRENCES,
    TEMPLATE_VERSIONS,
)
from app.schemas.completions import CompletionCreate, CompletionFields, CompletionUpdate
from app.services import assignments, audit
from app.services.access import client_visibility_of, visible_completions
from app.services.audit import Action
from app.services.events import EventType, new_event, write_events
from app.services.measures import score_for_kind
from app.services.reminders import service as reminders
from app.services.response_schema import distress_signals, validate_answers
from app.services.statuses import OccurrenceStatus

OCCURRENCE_STATUS = {"done": "completed", "partial": "partial", "not_done": "declined"}
EDIT_WINDOW = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)
CONTENT_FIELDS = (
    "status",
    "answers",
    "barriers",
    "barrier_note",
    "helpfulness",
    "effort",
    "minutes_spent",
    "reflection",
)


@dataclass(frozen=True)
class CompletionFilters:
    client_id: str | None = None
    assignment_id: str | None = None
    distress_flagged: bool | None = None
    reviewed: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


def editable_until(completion: Completion) -> datetime:
    return completion.received_at + EDIT_WINDOW


def _check(fields: CompletionFields, schema: dict[str, Any]) -> None:
    """Every problem at once, each named by its JSON pointer."""
    errors: list[FieldError] = []
    if fields.status == "not_done" and not fields.barriers:
        errors.append(
            field_error("body", ["barriers"], "not_done needs at least one barrier", "required")
        )
    if len(set(fields.barriers)) != len(fields.barriers):
        errors.append(field_error("body", ["barriers"], "each barrier at most once", "duplicate"))
    if "other" in fields.barriers and not (fields.barrier_note or "").strip():
        errors.append(
            field_error("body", ["barrier_note"], "the barrier 'other' needs a note", "required")
        )
    if fields.status == "not_done" and fields.answers:
        errors.append(
            field_error("body", ["answers"], "a not_done completion has no answers", "not_allowed")
        )
    if fields.status == "done" and fields.answers is None:
        errors.append(
            field_error("body", ["answers"], "a done completion needs its answers", "required")
        )
    if fields.answers is not None:
        for issue in validate_answers(schema, fields.answers):
            # Partly done work may leave required answers out; everything given must be valid.
            if fields.status == "partial" and issue.code == "required":
                continue
            segments = [
                p.replace("~1", "/").replace("~0", "~") for p in issue.pointer.split("/")[1:]
            ]
            errors.append(field_error("body", ["answers", *segments], issue.message, issue.code))
    if errors:
        raise ValidationFailed(errors=errors)


def _assess(completion: Completion, schema: dict[str, Any]) -> list[str]:
    """Score, and the distress reasons (codes and pointers only)."""
    reasons = []
    if "felt_overwhelmed" in completion.barriers:
        reasons.append("barrier:felt_overwhelmed")
    if completion.answers:
        reasons += [f"answer:{pointer}" for pointer in distress_signals(schema, completion.answers)]
    completion.score = completion.severity = None
    if completion.status == "done" and completion.answers is not None:
        measure = score_for_kind(completion.kind, completion.answers)
        if measure is not None:
            completion.score, completion.severity = measure.total, measure.band
    return reasons


def _snapshot(completion: Completion) -> dict[str, Any]:
    return {field: getattr(completion, field) for field in CONTENT_FIELDS}


def _revision(completion: Completion, principal: Principal) -> CompletionRevision:
    return CompletionRevision(
        completion_id=completion.id,
        number=completion.version,
        snapshot=_snapshot(completion),
        recorded_by_kind=principal.kind.value,
        recorded_by_id=principal.subject_id,
    )


def _flag(completion: Completion, reasons: list[str]) -> list[Event]:
    """Flag the completion; the event to record if it was not flagged before."""
    newly = not completion.distress_flagged and bool(reasons)
    completion.distress_reasons = sorted(set(completion.distress_reasons) | set(reasons))
    if not newly:
        return []
    completion.distress_flagged = True
    # At once, in the same transaction: the vendor pages someone on this event.
    return [_event(completion, EventType.completion_distress_flagged)]


def _event(
    completion: Completion, event_type: EventType, changed_fields: Sequence[str] = ()
) -> Event:
    return new_event(
        completion.tenant_id,
        event_type,
        client_id=completion.client_id,
        changed_fields=changed_fields,
        completion_id=completion.id,
        occurrence_id=completion.occurrence_id,
        assignment_id=completion.assignment_id,
    )


async def _assignment_and_version(
    session: AsyncSession, assignment_id: str
) -> tuple[Assignment, TemplateVersion]:
    """The assignment and the template version it was made from: what the answers must fit."""
    assignment = await session.get(Assignment, assignment_id)
    assert assignment is not None
    version = await session.get(TemplateVersion, assignment.template_version_id)
    assert version is not None
    return assignment, version


def _locked_occurrence(kind: Context) -> Statement:
    """The occurrence, locked (the worker may be marking it missed at the same moment), with
    its assignment, the template version the answers must fit and the client: one statement."""
    return Statement(
        select(*columns_of(OCCURRENCES, ASSIGNMENTS, TEMPLATE_VERSIONS, CLIENTS))
        .join(ASSIGNMENTS, ASSIGNMENTS.c.id == OCCURRENCES.c.assignment_id)
        .join(TEMPLATE_VERSIONS, TEMPLATE_VERSIONS.c.id == ASSIGNMENTS.c.template_version_id)
        .join(CLIENTS, CLIENTS.c.id == OCCURRENCES.c.client_id)
        .where(
            OCCURRENCES.c.id == param("occurrence_id"),
            OCCURRENCES.c.tenant_id == param("tenant_id"),
            client_visibility_of(kind, param("subject_id"), OCCURRENCES.c.client_id),
        )
        .with_for_update(of=OCCURRENCES),
        [OCCURRENCES, ASSIGNMENTS, TEMPLATE_VERSIONS, CLIENTS],
    )


_LOCKED_OCCURRENCE = {kind: _locked_occurrence(kind) for kind in Context}
_INSERT_COMPLETION = Statement(insert(COMPLETIONS))
_INSERT_REVISION = Statement(insert(COMPLETION_REVISIONS))
_MOVE_OCCURRENCE = Statement(
    OCCURRENCES.update()
    .where(OCCURRENCES.c.id == param("occurrence_id"))
    .values(status=param("status"), updated_at=param("now"))
)


async def create(
    session: AsyncSession, principal: Principal, body: CompletionCreate, now: datetime
) -> Completion:
    found = await _LOCKED_OCCURRENCE[principal.kind].fetch_one(
        session,
        occurrence_id=body.occurrence_id,
        tenant_id=principal.tenant_id,
        subject_id=principal.subject_id,
    )
    if found is None:
        await audit.record_refusal_if_hidden(
            session, principal, Action.create, "occurrence", body.occurrence_id
        )
        raise NotFound("No such occurrence.")
    occurrence, assignment, version, client = found
    if occurrence.status == OccurrenceStatus.cancelled:
        raise Conflict("The occurrence was cancelled.")
    _check(body, version.response_schema)
    if body.imported and not principal.is_system:
        raise Forbidden("Only your backend (a system token) may import a completion.")
    completed_at = body.completed_at or now
    _check_completed_at(completed_at, occurrence.opens_at, now, imported=body.imported)
    stamp = utcnow()
    completion = Completion(
        tenant_id=occurrence.tenant_id,
        occurrence_id=occurrence.id,
        assignment_id=occurrence.assignment_id,
        client_id=occurrence.client_id,
        kind=assignment.kind,
        completed_at=completed_at,
        time_zone=body.time_zone or client.time_zone,
        received_at=now,
        late=completed_at > occurrence.closes_at,
        imported=body.imported,
        recorded_by_kind=principal.kind.value,
        recorded_by_id=principal.subject_id,
        in_session=principal.is_clinician,
        distress_flagged=False,
        distress_reasons=[],
        created_at=stamp,
        updated_at=stamp,
        id=new_id("cmp"),
        version=1,
        **body.model_dump(include=set(CONTENT_FIELDS)),
    )
    reasons = _assess(completion, version.response_schema)
    events = [_event(completion, EventType.completion_created), *_flag(completion, reasons)]
    # Written as statements, not through the unit of work: the completion is never changed
    # again in this request, and the object only shapes the response.
    try:
        await _INSERT_COMPLETION.execute_many(session, [values_of(completion, COMPLETIONS)])
    except IntegrityError as exc:
        raise Conflict("This occurrence already has a completion; edit it instead.") from exc
    revision = _revision(completion, principal)
    revision.id, revision.created_at = new_id("cmr"), stamp
    await _INSERT_REVISION.execute_many(session, [values_of(revision, COMPLETION_REVISIONS)])
    await write_events(session, events)
    await _MOVE_OCCURRENCE.execute_many(
        session,
        [
            {
                "occurrence_id": occurrence.id,
                "status": OCCURRENCE_STATUS[completion.status],
                "now": now,
            }
        ],
    )
    if reminders.policy_of(assignment, version).only_if_not_done:
        await reminders.cancel_pending(session, "resolved", occurrence_id=occurrence.id)
    await assignments.finish_if_resolved(session, assignment, now)
    action = Action.import_ if completion.imported else Action.create
    await audit.record(
        session, principal, action, "completion", [(completion.client_id, completion.id)]
    )
    return completion


def _check_completed_at(
    completed_at: datetime, opens_at: datetime, now: datetime, *, imported: bool
) -> None:
    """The client's clock is trusted within CLOCK_SKEW: never in the future, and never before
    the occurrence could be seen (backdating would turn late work into on-time work). History
    from another system comes as an import, which may be older."""
    if completed_at > now + CLOCK_SKEW:
        raise ValidationFailed.for_field("body", ["completed_at"], "is in the future", "future")
    if not imported and completed_at < opens_at - CLOCK_SKEW:
        opening = f"{opens_at:%Y-%m-%dT%H:%M:%SZ}"
        why = (
            f"is before the occurrence opens ({opening}): it cannot be done yet"
            if opens_at > now
            else f"is before the occurrence opened ({opening}); your backend brings older "
            "history with `imported: true`"
        )
        raise ValidationFailed.for_field("body", ["completed_at"], why, "before_window")


async def get(
    session: AsyncSession, principal: Principal, completion_id: str, *, action: Action = Action.read
) -> Completion:
    completion = await session.scalar(
        visible_completions(principal).where(Completion.id == completion_id)
    )
    if completion is None:
        await audit.record_refusal_if_hidden(
            session, principal, action, "completion", completion_id
        )
        raise NotFound("No such completion.")
    await audit.record(
        session, principal, action, "completion", [(completion.client_id, completion.id)]
    )
    return completion


async def search(
    session: AsyncSession,
    principal: Principal,
    filters: CompletionFilters,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Completion], str | None]:
    statement = visible_completions(principal)
    if filters.client_id is not None:
        statement = statement.where(Completion.client_id == filters.client_id)
    if filters.assignment_id is not None:
        statement = statement.where(Completion.assignment_id == filters.assignment_id)
    if filters.distress_flagged is not None:
        statement = statement.where(Completion.distress_flagged.is_(filters.distress_flagged))
    if filters.reviewed is not None:
        reviewed = Completion.reviewed_at.is_not(None)
        statement = statement.where(reviewed if filters.reviewed else ~reviewed)
    if filters.since is not None:
        statement = statement.where(Completion.completed_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(Completion.completed_at < filters.until)
    rows = (await session.scalars(paginate(statement, Completion.id, limit, cursor))).all()
    completions, next_cursor = page_of(rows, limit, lambda c: c.id)
    await audit.record(
        session, principal, Action.list, "completion", [(c.client_id, c.id) for c in completions]
    )
    return completions, next_cursor


async def update(
    session: AsyncSession,
    principal: Principal,
    completion: Completion,
    body: CompletionUpdate,
    now: datetime,
) -> Completion:
    if (
        principal.kind.value != completion.recorded_by_kind
        or principal.subject_id != completion.recorded_by_id
    ):
        # Seen but not theirs to change (a clinician editing the client's own words): refused.
        audit.record_refusal(
            session, principal, Action.update, "completion", completion.client_id, completion.id
        )
        raise Forbidden("Only whoever recorded a completion may edit it.")
    if now > editable_until(completion):
        raise Conflict("The edit window for this completion has closed.")
    _, version = await _assignment_and_version(session, completion.assignment_id)
    _check(body, version.response_schema)
    before = _snapshot(completion)
    for field in CONTENT_FIELDS:
        setattr(completion, field, getattr(body, field))
    changed = [field for field in CONTENT_FIELDS if before[field] != getattr(completion, field)]
    if not changed:
        return completion
    reasons = _assess(completion, version.response_schema)
    await session.flush()
    session.add(_revision(completion, principal))
    occurrence = await session.get(Occurrence, completion.occurrence_id)
    assert occurrence is not None
    occurrence.status = OCCURRENCE_STATUS[completion.status]
    session.add_all(
        [_event(completion, EventType.completion_updated, changed), *_flag(completion, reasons)]
    )
    await session.flush()
    await audit.record(
        session, principal, Action.update, "completion", [(completion.client_id, completion.id)]
    )
    return completion


async def review(
    session: AsyncSession,
    principal: Principal,
    completion: Completion,
    feedback: str,
    now: datetime,
) -> Completion:
    if principal.is_client:
        raise Forbidden("A clinician reviews a completion.")
    completion.feedback = feedback
    completion.reviewed_by = principal.subject_id
    completion.reviewed_at = now
    await session.flush()
    session.add(_event(completion, EventType.completion_reviewed, ["review"]))
    return completion


async def revisions(session: AsyncSession, completion: Completion) -> list[CompletionRevision]:
    return list(
        (
            await session.scalars(
                select(CompletionRevision)
                .where(CompletionRevision.completion_id == completion.id)
                .order_by(CompletionRevision.number)
            )
        ).all()
    )
