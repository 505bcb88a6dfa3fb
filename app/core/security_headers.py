"""Security headers on every response, added by a pure ASGI middleware.

Pure ASGI (not BaseHTTPMiddleware) because it runs on every request and must not add a task or
buffer the body: it only edits the headers of `http.response.start`.

- `Cache-Control: no-store` under `/v1` and `/oauth`: those answers carry PHI or tokens, which
  no browser, proxy or CDN may keep, whatever a route said (a route may say more, such as the
  adherence picture's `private, no-store`, as long as it says `no-store`). Other paths keep
  their own caching (the docs assets are answered with ETag and Last-Modified, deliberately).
- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` everywhere: a JSON answer
  is never run as a script, and a URL of ours (ids in paths) never leaves in a Referer.
- `Content-Security-Policy`: a response that has none (the docs page sets its own, for its
  inline script) gets one that allows nothing, so that an answer opened in a browser cannot load
  or run anything, nor be framed.
- `Strict-Transport-Security` in production only: in development the API is plain http on
  loopback, and a browser that saw HSTS for 127.0.0.1 would refuse it for a year. No
  `includeSubDomains`: the operator's other hosts are not ours to decide for.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE_PREFIXES = ("/v1", "/oauth")
LOCKED_DOWN_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"

_CACHE_CONTROL = b"cache-control"
_CSP = b"content-security-policy"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        always = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts:
            always.append((b"strict-transport-security", HSTS.encode()))
        self.always = always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = _under(scope, NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if not (
                        no_store and name.lower() == _CACHE_CONTROL and not _says_no_store(value)
                    )
                ]
                headers.extend(self.always)
                if no_store and not any(name.lower() == _CACHE_CONTROL for name, _ in headers):
                    headers.append((_CACHE_CONTROL, b"no-store"))
                if not any(name.lower() == _CSP for name, _ in headers):
                    headers.append((_CSP, LOCKED_DOWN_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _says_no_store(value: bytes) -> bool:
    return b"no-store" in (part.strip().lower() for part in value.split(b","))


def _under(scope: Scope, prefixes: tuple[str, ...]) -> bool:
    """Whether the path, below any prefix a proxy serves us under, is in one of `prefixes`."""
    path: str = scope.get("path", "")
    root = str(scope.get("root_path", "")).rstrip("/")
    if root and path.startswith(root):
        path = path[len(root) :]
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)
