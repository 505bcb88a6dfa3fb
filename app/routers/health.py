"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text

from app.core.db import Database, get_database
from app.core.errors import ServiceUnavailable, problem_responses
from app.core.migrations import current_revision, head_revision

router = APIRouter(tags=["health"])
log = logging.getLogger("homework.health")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    migration: str


@router.get("/healthz", operation_id="get_health", summary="The process is alive")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    operation_id="get_readiness",
    summary="The database is reachable and migrated to head",
    responses=problem_responses(503),
)
async def readyz(database: Annotated[Database, Depends(get_database)]) -> Readiness:
    try:
        async with asyncio.timeout(database.settings.readiness_timeout_seconds):
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                revision = await current_revision(connection)
    except Exception as exc:  # any failure to reach the database means "not ready"
        log.warning("not ready: database unreachable", extra={"error": type(exc).__name__})
        raise ServiceUnavailable("The database is unreachable.") from exc
    head = head_revision()
    if revision != head:
        raise ServiceUnavailable(f"The database schema is at {revision}, not at {head}.")
    return Readiness(migration=revision or "")
