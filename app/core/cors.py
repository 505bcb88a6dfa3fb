"""Cross-origin access for browser apps: the options of Starlette's `CORSMiddleware`.

Clinician and client web apps call the API from their own origins with a bearer token. Only the
origins in `HOMEWORK_CORS_ORIGINS` may read answers (exact matches; a wildcard is refused in
config.py because requests carry credentials). A preflight from any other origin is a 400 and
its answers carry no `Access-Control-Allow-Origin`, so the browser withholds them.
"""

from __future__ import annotations

from typing import Any

from app.core.config import Settings

# Every method a route of ours answers (OPTIONS is the preflight itself).
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What a browser app sends: its token, a retry key for POSTs, the version for conditional
# writes, JSON bodies, and its own id for correlating logs.
ALLOWED_HEADERS = ("Authorization", "Idempotency-Key", "If-Match", "Content-Type", "X-Request-ID")
# Response headers a browser hides from scripts unless named: versions for If-Match, whether
# a POST was replayed, the request id to quote, when to retry, the rate limits, and where a
# created resource lives.
EXPOSED_HEADERS = (
    "ETag",
    "Idempotent-Replayed",
    "X-Request-ID",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Location",
)
# How long a browser may reuse a preflight's answer: fewer OPTIONS round trips, and short
# enough that removing an origin takes effect within minutes.
PREFLIGHT_MAX_AGE_SECONDS = 600


def middleware_options(settings: Settings) -> dict[str, Any]:
    return {
        "allow_origins": settings.allowed_cors_origins,
        "allow_methods": ALLOWED_METHODS,
        "allow_headers": ALLOWED_HEADERS,
        "expose_headers": EXPOSED_HEADERS,
        # Bearer tokens are not credentials in CORS's sense (cookies are), but a frontend may
        # send `credentials: "include"` by habit; exact origins make that safe.
        "allow_credentials": True,
        "max_age": PREFLIGHT_MAX_AGE_SECONDS,
    }
