"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from app.core.db import Database, get_database
from app.core.errors import ServiceUnavailable, problem_responses
from app.core.migrations import current_revision, head_revision

router = APIRouter(tags=["health"])
log = logging.getLogger("homework.health")


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "database": "ok", "migration": "20261122_0007"}]
        }
    )

    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    migration: str


@router.get(
    "/healthz",
    operation_id="get_health",
    summary="The process is alive",
    description="Answers 200 whenever the process can serve requests, without touching the "
    "database: a liveness probe. No token needed.",
)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    operation_id="get_readiness",
    summary="The database is reachable and migrated to head",
    description="200, with the schema's migration revision, once the database answers and "
    "its schema is at the latest migration; otherwise 503 problem+json, so that a load "
    "balancer sends this process no traffic yet. No token needed.",
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
