"""Pure ASGI middleware: request ids and access logs, and the request body limit.

Pure ASGI (not BaseHTTPMiddleware) because these run on every request and must not add a task
or buffer the body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics, trace_context
from app.core.errors import InternalError, PayloadTooLarge, problem_response

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("homework.access")
error_log = logging.getLogger("homework.errors")


class RequestContextMiddleware:
    """Gives every request an id (the caller's, if it is safe to echo), returns it on the
    response, writes one access-log line with the request's trace id (its span's with tracing
    on; else the caller's traceparent's, or a new one: a line can always be correlated), and
    turns any unhandled exception into a 500 problem that leaks nothing."""

    def __init__(self, app: ASGIApp, *, count_requests: bool = True) -> None:
        self.app = app
        self.count_requests = count_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Request(scope).headers
        offered = headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if _SAFE_REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        # Bound for the request: the events it records keep it for their deliveries.
        trace_id, trace_token = trace_context.begin(headers.get(trace_context.TRACEPARENT))
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception(
                "unhandled error",
                extra={"request_id": request_id, "trace_id": trace_id, **_route_fields(scope)},
            )
            if response_started:
                raise
            await problem_response(Request(scope), InternalError())(scope, receive, send_with_id)
        finally:
            trace_context.end(trace_token)
            elapsed = time.perf_counter() - started
            route = _route_fields(scope)
            if self.count_requests:
                metrics.observe_request(route["path"], route["method"], status, elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "trace_id": trace_id,
                    **route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


def _route_fields(scope: Scope) -> dict[str, Any]:
    route = scope.get("route")
    # The template (/v1/clients/{client_id}), never the raw path: ids in paths are not for logs.
    path = getattr(route, "path", None) or "<unmatched>"
    return {"method": scope.get("method"), "path": path}


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413, whether declared by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Request(scope).headers
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body: nothing to count
            return
        too_large = PayloadTooLarge(f"The request body may be at most {self.max_body_bytes} bytes.")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await problem_response(Request(scope), too_large)(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await problem_response(Request(scope), too_large)(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it as it is (it wraps any other
    exception from `receive` in a 400)."""

    def __init__(self) -> None:
        super().__init__(status_code=413)
