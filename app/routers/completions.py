from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.etags import IfMatchHeader, check_if_match, set_etag
from app.core.pagination import CursorQuery, LimitQuery, Page
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.models import Completion, CompletionRevision
from app.schemas.common import Instant
from app.schemas.completions import (
    CompletionCreate,
    CompletionOut,
    CompletionRevisionOut,
    CompletionUpdate,
    MeasureOut,
    ReviewCreate,
    ReviewOut,
)
from app.services import completions
from app.services.audit import Action

router = APIRouter(prefix="/v1/completions", tags=["completions"], route_class=AppRoute)
CompletionId = Annotated[str, Path(max_length=40)]


def completion_out(completion: Completion) -> CompletionOut:
    return CompletionOut(
        id=completion.id,
        occurrence_id=completion.occurrence_id,
        assignment_id=completion.assignment_id,
        client_id=completion.client_id,
        kind=completion.kind,
        status=completion.status,
        answers=completion.answers,
        barriers=completion.barriers,
        barrier_note=completion.barrier_note,
        helpfulness=completion.helpfulness,
        effort=completion.effort,
        minutes_spent=completion.minutes_spent,
        reflection=completion.reflection,
        completed_at=completion.completed_at,
        time_zone=completion.time_zone,
        received_at=completion.received_at,
        late=completion.late,
        imported=completion.imported,
        recorded_by=completion.recorded_by_kind,
        in_session=completion.in_session,
        measure=(
            MeasureOut(score=completion.score, severity=completion.severity or "")
            if completion.score is not None
            else None
        ),
        distress_flagged=completion.distress_flagged,
        distress_reasons=completion.distress_reasons,
        review=(
            ReviewOut(
                feedback=completion.feedback or "",
                reviewed_by=completion.reviewed_by or "",
                reviewed_at=completion.reviewed_at,
            )
            if completion.reviewed_at is not None
            else None
        ),
        revision=completion.version,
        editable_until=completions.editable_until(completion),
        created_at=completion.created_at,
        updated_at=completion.updated_at,
    )


def revision_out(revision: CompletionRevision) -> CompletionRevisionOut:
    return CompletionRevisionOut(
        number=revision.number,
        recorded_by=revision.recorded_by_kind,
        created_at=revision.created_at,
        content=revision.snapshot,
    )


@router.post(
    "",
    status_code=201,
    operation_id="create_completion",
    summary="Record what was done for one occurrence",
    description="The client records their own; a clinician may record one during a session "
    "(marked `in_session`). Answers are checked against the template version the assignment "
    "was made from; every bad field is named by JSON pointer. A completion after the "
    "occurrence's window closed is accepted and marked `late`; one dated before the occurrence "
    "opened is refused, unless your backend imports it (`imported`).",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_completion(
    body: CompletionCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("completions", "c")],
    now: NowDep,
) -> CompletionOut:
    completion = await completions.create(session, principal, body, now)
    set_etag(response, completion.id, completion.version)
    return completion_out(completion)


@router.get(
    "",
    operation_id="list_completions",
    summary="List completions",
    description="Your backend sees the tenant's completions, a clinician those of the clients "
    "on their care teams, a client only their own. Filter by client, assignment, distress flag, "
    "review or completion time; newest first.",
    responses=problem_responses(401, 403, 422),
)
async def list_completions(
    session: SessionDep,
    principal: Annotated[Principal, require("completions", "s")],
    client_id: Annotated[str | None, Query(max_length=40)] = None,
    assignment_id: Annotated[str | None, Query(max_length=40)] = None,
    distress_flagged: Annotated[
        bool | None, Query(description="Only flagged (or unflagged) ones.")
    ] = None,
    reviewed: Annotated[
        bool | None, Query(description="Only reviewed (or unreviewed) ones.")
    ] = None,
    since: Annotated[Instant | None, Query(description="Completed at or after.")] = None,
    until: Annotated[Instant | None, Query(description="Completed before.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[CompletionOut]:
    filters = completions.CompletionFilters(
        client_id, assignment_id, distress_flagged, reviewed, since, until
    )
    items, next_cursor = await completions.search(
        session, principal, filters, limit=limit, cursor=cursor
    )
    return Page(data=[completion_out(c) for c in items], next_cursor=next_cursor)


@router.get(
    "/{completion_id}",
    operation_id="get_completion",
    summary="Read a completion, with its review",
    description="Visible to your backend, to the clinicians on the client's care team and to "
    "the client; anyone else gets 404. Send the `ETag` back as `If-Match` when you edit it.",
    responses=problem_responses(401, 403, 404),
)
async def get_completion(
    completion_id: CompletionId,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("completions", "r")],
) -> CompletionOut:
    completion = await completions.get(session, principal, completion_id)
    set_etag(response, completion.id, completion.version)
    return completion_out(completion)


@router.put(
    "/{completion_id}",
    operation_id="update_completion",
    summary="Edit a completion within its edit window",
    description="The whole content again; the previous version is kept. Only whoever recorded "
    "it may edit it, within 24 hours of receipt. Send `If-Match`.",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_completion(
    completion_id: CompletionId,
    body: CompletionUpdate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("completions", "u")],
    now: NowDep,
    if_match: IfMatchHeader = None,
) -> CompletionOut:
    completion = await completions.get(session, principal, completion_id, action=Action.update)
    check_if_match(if_match, completion.id, completion.version)
    completion = await completions.update(session, principal, completion, body, now)
    set_etag(response, completion.id, completion.version)
    return completion_out(completion)


@router.get(
    "/{completion_id}/revisions",
    operation_id="list_completion_revisions",
    summary="Every version of a completion, oldest first",
    description="Each version as it was recorded, and by whom (`client`, `clinician` or "
    "`system`): an edit never overwrites what was said. Visible to whoever may read the "
    "completion.",
    responses=problem_responses(401, 403, 404),
)
async def list_completion_revisions(
    completion_id: CompletionId,
    session: SessionDep,
    principal: Annotated[Principal, require("completions", "r")],
) -> list[CompletionRevisionOut]:
    completion = await completions.get(session, principal, completion_id)
    return [revision_out(r) for r in await completions.revisions(session, completion)]


@router.post(
    "/{completion_id}/review",
    operation_id="review_completion",
    summary="Leave feedback on a completion (the clinician)",
    description="The client sees it on the completion. A new review replaces the previous one.",
    responses=problem_responses(401, 403, 404, 422),
)
async def review_completion(
    completion_id: CompletionId,
    body: ReviewCreate,
    session: SessionDep,
    response: Response,
    principal: Annotated[Principal, require("completions", "u")],
    now: NowDep,
) -> CompletionOut:
    completion = await completions.get(session, principal, completion_id, action=Action.update)
    completion = await completions.review(session, principal, completion, body.feedback, now)
    set_etag(response, completion.id, completion.version)
    return completion_out(completion)
