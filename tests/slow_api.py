"""The real application with one more POST, for tests that must kill an API mid-request.

`uvicorn --factory tests.slow_api:create_slow_app`: the route goes through the same route class
(and so the same Idempotency-Key claim and lease) as every POST of the API. With
HOMEWORK_TEST_HANG=1 it never answers once the key is claimed, so the test can SIGKILL the
process while the key is in flight; otherwise it answers 201 with the serving process's id.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI

from app.core.routing import AppRoute
from app.core.security import Principal, authenticate
from app.main import create_app

SLOW_PATH = "/test/slow-writes"


def create_slow_app() -> FastAPI:
    app = create_app()
    router = APIRouter(route_class=AppRoute)

    @router.post(SLOW_PATH, status_code=201)
    async def slow_write(_caller: Annotated[Principal, Depends(authenticate)]) -> dict[str, int]:
        if os.environ.get("HOMEWORK_TEST_HANG") == "1":
            await asyncio.Event().wait()
        return {"served_by": os.getpid()}

    app.include_router(router)
    return app
