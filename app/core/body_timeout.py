"""A deadline for the request body: `408` problem+json and a closed connection when it is missed.

uvicorn times out idle keep-alive connections but not a request whose body trickles in: a
client that declares 1,000 bytes, sends one and waits holds its connection (and a task, and,
once the route has opened it, a database transaction) for as long as it likes. Enough such
clients and nobody else is served (slowloris). The deadline counts from the start of the
request, not from the last byte, so that sending a byte now and then does not extend it.

Pure ASGI (not BaseHTTPMiddleware): it wraps `receive` and edits response headers, nothing more.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import RequestTimeout, problem_response


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Request(scope).headers
        declared = headers.get("content-length")
        if declared == "0" or (declared is None and "transfer-encoding" not in headers):
            await self.app(scope, receive, send)  # no body: nothing to wait for
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        complete = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                # After the body, `receive` waits for the disconnect: that is not ours to time.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimedOut(self.timeout_seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def send_closing_if_unread(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if not complete:
                    # Answered before the body arrived (an error, a route that reads no body):
                    # the server would otherwise keep reading the rest for as long as it comes.
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, timed_receive, send_closing_if_unread)
        except _BodyTimedOut as exc:
            # Read outside a route (inside one, the exception handlers have answered it).
            if response_started:
                raise
            problem = RequestTimeout(exc.detail)
            await problem_response(Request(scope), problem)(scope, receive, send_closing_if_unread)


class _BodyTimedOut(StarletteHTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it as it is (it wraps any other
    exception from `receive` in a 400) and the HTTP exception handler answers it. The body is
    then unread, so the answer closes the connection (`send_closing_if_unread`)."""

    def __init__(self, timeout_seconds: float) -> None:
        detail = f"The request body was not received within {timeout_seconds:g} seconds."
        super().__init__(status_code=408, detail=detail)
