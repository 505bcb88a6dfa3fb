"""The route class every router uses: it adds the `Idempotency-Key` guard to each POST and
stores the response of a claimed key in the request's own transaction."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.core import idempotency
from app.core.db import REQUEST_SESSION_KEY


class AppRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        if "POST" in methods:
            dependencies: Sequence[Any] = kwargs.get("dependencies") or ()
            kwargs["dependencies"] = [
                *dependencies,
                Depends(idempotency.claim_idempotency_key),
            ]
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except idempotency.Replay as replay:
                return idempotency.replay_response(replay)
            claim = getattr(request.state, "idempotency_claim", None)
            if claim is None:
                return response
            if response.status_code < 300:
                # Still inside the request's transaction: stored with the change, or not at all.
                session = request.scope[REQUEST_SESSION_KEY]
                await idempotency.store_response(session, claim, response)
            else:
                await idempotency.release(request.app.state.database, claim)
            return response

        return handle
