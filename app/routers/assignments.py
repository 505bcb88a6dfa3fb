from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.etags import IfMatchHeader, check_if_match, set_etag
from app.core.openapi_document import json_example
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import Adjustment, Assignment, Occurrence
from app.schemas.assignment_preview import AssignmentPreview, PreviewOccurrence, PreviewReminder
from app.schemas.assignments import (
    DECLINE_EXAMPLE,
    DECLINED_ADJUSTMENT_EXAMPLE,
    PROPOSED_ADJUSTMENT_EXAMPLE,
    AdjustmentCreate,
    AdjustmentOut,
    AdjustmentResolve,
    AssignmentCreate,
    AssignmentOut,
    AssignmentStatus,
    AssignmentUpdate,
    OccurrenceOut,
    ReminderPolicyIn,
    ScheduleOut,
    TemplateRef,
)
from app.schemas.common import Instant
from app.services import adjustments, assignment_preview, assignments
from app.services.audit import Action
from app.services.schedules import occurrences as scheduling

router = APIRouter(prefix="/v1/assignments", tags=["assignments"], route_class=AppRoute)
AssignmentId = Annotated[str, Path(max_length=40)]


def occurrence_out(occurrence: Occurrence) -> OccurrenceOut:
    return OccurrenceOut.model_validate(occurrence, from_attributes=True)


def assignment_out(
    assignment: Assignment, occurrences: Sequence[Occurrence] | None = None
) -> AssignmentOut:
    return AssignmentOut(
        id=assignment.id,
        client_id=assignment.client_id,
        clinician_id=assignment.clinician_id,
        template=TemplateRef(id=assignment.template_id, version_id=assignment.template_version_id),
        kind=assignment.kind,
        title=assignment.title,
        instructions=assignment.instructions,
        purpose=assignment.purpose,
        difficulty_step=assignment.difficulty_step,
        status=assignment.status,
        schedule=schedule_out(assignment),
        window=assignments.schedule_window(assignment),
        reminders=(
            ReminderPolicyIn.model_validate(assignment.reminder_policy)
            if assignment.reminder_policy
            else None
        ),
        created_at=assignment.created_at,
        updated_at=assignment.updated_at,
        occurrences=[occurrence_out(o) for o in occurrences] if occurrences is not None else None,
    )


def schedule_out(assignment: Assignment) -> ScheduleOut:
    return ScheduleOut(
        type=assignment.schedule_type,
        rrule=assignment.rrule,
        start_local=assignment.start_local,
        due_at=assignment.due_at,
    )


def preview_out(preview: assignment_preview.Preview) -> AssignmentPreview:
    def local(instant: datetime) -> str:
        return scheduling.local_label(instant, preview.time_zone)

    return AssignmentPreview(
        client_id=preview.assignment.client_id,
        time_zone=preview.time_zone,
        as_of=preview.as_of,
        until=preview.until,
        schedule=schedule_out(preview.assignment),
        window=assignments.schedule_window(preview.assignment),
        occurrences=[
            PreviewOccurrence(
                ordinal=o.occurrence.ordinal,
                status=o.occurrence.status,
                due_at=o.occurrence.due_at,
                opens_at=o.occurrence.opens_at,
                closes_at=o.occurrence.closes_at,
                local_due=o.occurrence.local_due,
                local_opens=local(o.occurrence.opens_at),
                local_closes=local(o.occurrence.closes_at),
                reminders=[
                    PreviewReminder.model_validate(r, from_attributes=True) for r in o.reminders
                ],
            )
            for o in preview.occurrences
        ],
    )


def adjustment_out(adjustment: Adjustment) -> AdjustmentOut:
    return AdjustmentOut.model_validate(adjustment, from_attributes=True)


@router.post(
    "",
    status_code=201,
    operation_id="create_assignment",
    summary="Assign homework to a client",
    description="A clinician assigns to a client on their care team; a system caller assigns on "
    "a clinician's behalf (`clinician_id`). Occurrences are created at once.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_assignment(
    body: AssignmentCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("assignments", "c")],
    now: NowDep,
) -> AssignmentOut:
    assignment, occurrences = await assignments.create(session, principal, body, now)
    set_etag(response, assignment.id, assignment.version)
    return assignment_out(assignment, occurrences)


@router.post(
    "/preview",
    operation_id="preview_assignment",
    summary="See what an assignment would give the client, without saving it",
    description="The same body, scopes and checks as creating one (every error is the one "
    "`POST /v1/assignments` would answer), and nothing is saved: the occurrences it would have "
    "over the next `days` days, with their windows and reminders on the client's clock, each "
    "reminder moved or skipped as quiet hours, a mute or a daily cap would have it. Show it "
    'before saving: "every evening at 20:00, reminded at 19:00".',
    responses=problem_responses(401, 403, 404, 422),
)
async def preview_assignment(
    body: AssignmentCreate,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "c")],
    now: NowDep,
    days: Annotated[
        int, Query(ge=1, le=28, description="How many days ahead to show (28: the horizon).")
    ] = 7,
) -> AssignmentPreview:
    found = await assignment_preview.preview(session, principal, body, now, days)
    return preview_out(found)


@router.get(
    "",
    operation_id="list_assignments",
    summary="List assignments",
    description="Your backend sees the tenant's assignments, a clinician those of the clients "
    "on their care teams, a client only their own. Filter by client, status, kind or due time; "
    "`include=occurrences` embeds each one's occurrences. Newest first.",
    responses=problem_responses(401, 403, 422),
)
async def list_assignments(
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "s")],
    client_id: Annotated[str | None, Query(max_length=40)] = None,
    status: AssignmentStatus | None = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    due_from: Annotated[
        Instant | None, Query(description="With an occurrence due at or after this.")
    ] = None,
    due_to: Annotated[
        Instant | None, Query(description="With an occurrence due before this.")
    ] = None,
    include: Annotated[
        Literal["occurrences"] | None, Query(description="`occurrences` to embed them.")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AssignmentOut]:
    filters = assignments.AssignmentFilters(client_id, status, kind, due_from, due_to)
    items, by_assignment, next_cursor = await assignments.search(
        session,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        include_occurrences=include == "occurrences",
    )
    return Page(
        data=[assignment_out(a, by_assignment.get(a.id, []) if include else None) for a in items],
        next_cursor=next_cursor,
    )


@router.get(
    "/{assignment_id}",
    operation_id="get_assignment",
    summary="Read an assignment with its occurrences",
    description="Visible to your backend, to the clinicians on the client's care team and to "
    "the client; anyone else gets 404. Send the `ETag` back as `If-Match` when you change it.",
    responses=problem_responses(401, 403, 404),
)
async def get_assignment(
    assignment_id: AssignmentId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("assignments", "r")],
) -> AssignmentOut:
    assignment = await assignments.read(session, principal, assignment_id)
    set_etag(response, assignment.id, assignment.version)
    return assignment_out(assignment, await assignments.occurrence_records(session, assignment.id))


@router.patch(
    "/{assignment_id}",
    operation_id="update_assignment",
    summary="Change an assignment",
    description="A new schedule or window recomputes the occurrences that have not opened yet; "
    "what the client could already see never moves.",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_assignment(
    assignment_id: AssignmentId,
    body: AssignmentUpdate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("assignments", "u")],
    now: NowDep,
    if_match: IfMatchHeader = None,
) -> AssignmentOut:
    assignment = await assignments.get(session, principal, assignment_id, action=Action.update)
    check_if_match(if_match, assignment.id, assignment.version)
    assignment = await assignments.update(session, principal, assignment, body, now)
    set_etag(response, assignment.id, assignment.version)
    return assignment_out(assignment, await assignments.occurrences_of(session, assignment))


@router.post(
    "/{assignment_id}/cancel",
    operation_id="cancel_assignment",
    summary="Cancel an assignment and its unresolved occurrences",
    description="For clinicians and your backend; a client gets 403. Its upcoming, open and "
    "started occurrences are cancelled, their pending reminders stop and an "
    "`assignment.cancelled` event follows. Cancelling a cancelled assignment answers it "
    "unchanged; a completed or expired one answers 409.",
    responses=problem_responses(401, 403, 404, 409),
)
async def cancel_assignment(
    assignment_id: AssignmentId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("assignments", "u")],
    now: NowDep,
) -> AssignmentOut:
    assignment = await assignments.get(session, principal, assignment_id, action=Action.update)
    assignment = await assignments.cancel(session, principal, assignment, now)
    set_etag(response, assignment.id, assignment.version)
    return assignment_out(assignment, await assignments.occurrences_of(session, assignment))


@router.get(
    "/{assignment_id}/occurrences",
    operation_id="list_occurrences",
    summary="An assignment's occurrences, in order",
    description="Not paged: every occurrence created so far, each with its completion window "
    "and its due time on the client's clock. A recurring series is created 28 days ahead, and "
    "further as time passes. Visible to whoever may read the assignment.",
    responses=problem_responses(401, 403, 404),
)
async def list_occurrences(
    assignment_id: AssignmentId,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "r")],
) -> list[OccurrenceOut]:
    assignment = await assignments.get(session, principal, assignment_id)
    return [occurrence_out(o) for o in await assignments.occurrences_of(session, assignment)]


@router.post(
    "/{assignment_id}/adjustments",
    status_code=201,
    operation_id="propose_adjustment",
    summary="Propose a smaller or different step (the client)",
    description="Only the client proposes (anyone else gets 403), and only on an active "
    "assignment (409): a new title, instructions, difficulty step or, for a recurring "
    "assignment, a new rule. Your backend hears of it through an `adjustment.proposed` event; a "
    "clinician accepts or declines it.",
    responses=problem_responses(401, 403, 404, 409, 422)
    | json_example(201, PROPOSED_ADJUSTMENT_EXAMPLE),
)
async def propose_adjustment(
    assignment_id: AssignmentId,
    body: AdjustmentCreate,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "u")],
    now: NowDep,
) -> AdjustmentOut:
    assignment = await assignments.get(session, principal, assignment_id, action=Action.update)
    return adjustment_out(await adjustments.propose(session, principal, assignment, body, now))


@router.get(
    "/{assignment_id}/adjustments",
    operation_id="list_adjustments",
    summary="The adjustments proposed for an assignment, newest first",
    description="Proposed, accepted and declined ones, each with the changes proposed and the "
    "clinician's answer. Visible to whoever may read the assignment.",
    responses=problem_responses(401, 403, 404),
)
async def list_adjustments(
    assignment_id: AssignmentId,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "r")],
) -> list[AdjustmentOut]:
    assignment = await assignments.get(session, principal, assignment_id)
    return [adjustment_out(a) for a in await adjustments.list_for(session, assignment)]


async def _resolve(
    assignment_id: str,
    adjustment_id: str,
    body: AdjustmentResolve,
    session: SessionDep,
    principal: Principal,
    now: datetime,
    *,
    accept: bool,
) -> AdjustmentOut:
    assignment = await assignments.get(session, principal, assignment_id, action=Action.update)
    adjustment = await adjustments.resolve(
        session, principal, assignment, adjustment_id, accept=accept, note=body.note, now=now
    )
    return adjustment_out(adjustment)


@router.post(
    "/{assignment_id}/adjustments/{adjustment_id}/accept",
    operation_id="accept_adjustment",
    summary="Accept a proposal: the assignment and its future occurrences change",
    description="For clinicians and your backend; a client gets 403. The proposed changes are "
    "made to the assignment, and a new rule recomputes the occurrences that have not opened "
    "yet. 409 if the proposal was already resolved or the assignment is no longer active.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def accept_adjustment(
    assignment_id: AssignmentId,
    adjustment_id: Annotated[str, Path(max_length=40)],
    body: AdjustmentResolve,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "u")],
    now: NowDep,
) -> AdjustmentOut:
    return await _resolve(assignment_id, adjustment_id, body, session, principal, now, accept=True)


@router.post(
    "/{assignment_id}/adjustments/{adjustment_id}/decline",
    operation_id="decline_adjustment",
    summary="Decline a proposal",
    description="For clinicians and your backend; a client gets 403. The assignment stays as it "
    "was; the optional `note` tells the client why. 409 if the proposal was already resolved.",
    responses=problem_responses(401, 403, 404, 409, 422)
    | json_example(200, DECLINED_ADJUSTMENT_EXAMPLE),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": DECLINE_EXAMPLE}}}},
)
async def decline_adjustment(
    assignment_id: AssignmentId,
    adjustment_id: Annotated[str, Path(max_length=40)],
    body: AdjustmentResolve,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "u")],
    now: NowDep,
) -> AdjustmentOut:
    return await _resolve(assignment_id, adjustment_id, body, session, principal, now, accept=False)
