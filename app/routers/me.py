from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.routers.assignments import occurrence_out
from app.schemas.assignments import Homework, HomeworkItem
from app.services import homework

router = APIRouter(prefix="/v1/me", tags=["me"], route_class=AppRoute)


@router.get(
    "/homework",
    operation_id="get_my_homework",
    summary="The client's today: what is open in their local day",
    description="For client tokens. Each item says what it asks (the response schema to "
    "render) and why (the purpose the clinician wrote with the client).",
    responses=problem_responses(401, 403),
)
async def get_my_homework(
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "r")],
    now: NowDep,
) -> Homework:
    today = await homework.today(session, principal, now)
    return Homework(
        date=today.date,
        time_zone=today.time_zone,
        items=[
            HomeworkItem(
                occurrence=occurrence_out(occurrence),
                assignment_id=assignment.id,
                kind=assignment.kind,
                title=assignment.title,
                instructions=assignment.instructions,
                purpose=assignment.purpose,
                difficulty_step=assignment.difficulty_step,
                estimated_minutes=version.estimated_minutes,
                response_schema=version.response_schema,
            )
            for occurrence, assignment, version in today.items
        ],
    )
