"""The route classes every router uses.

`TransactionRoute` gives each request one session and transaction: opened before the
dependencies run, committed once the endpoint has returned and its response is built, before it
is sent (a client that reads right after our 201 finds the row), rolled back on any error (then
the writes a failure keeps, such as a denial's audit row, app.core.after_rollback, run). It
lives in the route, not in a generator dependency, because FastAPI's exit stack around a
generator dependency cost about a tenth of a cached read.

`AppRoute` adds the `Idempotency-Key` guard to each POST and stores the response of a claimed
key in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Depends, Request, params
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.core import idempotency
from app.core.after_rollback import run_kept_writes
from app.core.db import REQUEST_SESSION_KEY, open_request_session
from app.core.json_body import read_json_body

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class TransactionRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        reads_json = self.body_field is not None and not isinstance(
            self.body_field.field_info, params.Form
        )

        async def handle(request: Request) -> Response:
            if reads_json:
                # Before the transaction: a body we refuse costs no connection.
                await read_json_body(request)
            async with open_request_session(request) as session:
                try:
                    response = await self.respond(request, handler)
                    await self.before_commit(request, response)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    await run_kept_writes(session)
                    await self.after_failure(request)
                    raise
            return response

        return handle

    async def respond(self, request: Request, handler: Handler) -> Response:
        return await handler(request)

    async def before_commit(self, request: Request, response: Response) -> None:
        """Still inside the request's transaction."""

    async def after_failure(self, request: Request) -> None:
        """After the rollback of a request that failed."""


class AppRoute(TransactionRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        if "POST" in methods:
            dependencies: Sequence[Any] = kwargs.get("dependencies") or ()
            kwargs["dependencies"] = [
                *dependencies,
                Depends(idempotency.claim_idempotency_key),
            ]
        super().__init__(path, endpoint, **kwargs)

    async def respond(self, request: Request, handler: Handler) -> Response:
        try:
            return await handler(request)
        except idempotency.Replay as replay:
            return idempotency.replay_response(replay)

    async def before_commit(self, request: Request, response: Response) -> None:
        claim = getattr(request.state, "idempotency_claim", None)
        if claim is None:
            return
        if response.status_code < 300:
            # Stored with the change, or not at all.
            await idempotency.store_response(request.scope[REQUEST_SESSION_KEY], claim, response)
        else:
            await self.after_failure(request)

    async def after_failure(self, request: Request) -> None:
        # A request that failed must not hold its Idempotency-Key: the caller may retry.
        claim = getattr(request.state, "idempotency_claim", None)
        if claim is not None:
            request.state.idempotency_claim = None
            await idempotency.release(request.app.state.database, claim)
