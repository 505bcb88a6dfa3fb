"""The application factory: routers, middleware and error handlers; nothing else."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app import webhook_catalog
from app.core import cors, metrics, openapi_document, trace_context
from app.core.body_timeout import BodyTimeoutMiddleware
from app.core.clock import Clock
from app.core.config import Environment, Settings, get_settings
from app.core.db import POOL_REPORT, Database, report_pool_forever
from app.core.errors import install_error_handlers
from app.core.jwks_cache import JwksCache
from app.core.keys import KeyRing
from app.core.logging import configure_logging
from app.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.core.outbound import guarded_client
from app.core.rate_limits import RateLimiter, RateLimitHeadersMiddleware
from app.core.revocations import RevocationList
from app.core.security_headers import SecurityHeadersMiddleware
from app.core.tokens import TokenService
from app.routers import docs, health, oauth, v1
from app.routers import metrics as metrics_route
from app.services.identity_providers import IssuerDirectory, outbound_policy
from app.worker.embedded import embedded_worker

API_DESCRIPTION = """\
Therapy homework for telehealth platforms: clinicians assign between-session homework, clients
complete it with structured answers, reminders respect the client's time zone, and the vendor's
backend hears about all of it through signed webhooks.

Every error is RFC 9457 `application/problem+json` with a stable `type`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # First, so that the engine and the HTTP client made next are instrumented (if it is on).
    tracing = trace_context.tracing_for(settings, "homework-api")
    database = Database(settings)
    outbound_http = guarded_client(outbound_policy(settings), timeout=5.0)
    if tracing is not None:
        tracing.instrument_httpx(outbound_http)
    jwks = JwksCache(
        outbound_http,
        ttl_seconds=settings.idp_jwks_ttl_seconds,
        min_refetch_seconds=settings.idp_jwks_min_refetch_seconds,
    )
    issuers = IssuerDirectory(database.engine, jwks)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        reporting = asyncio.create_task(report_pool_forever(database, stop), name=POOL_REPORT)
        async with embedded_worker(database):
            yield
        stop.set()
        await reporting
        await outbound_http.aclose()
        await database.dispose()
        metrics.forget_this_process()
        if tracing is not None:
            tracing.flush()  # the last spans, before the process exits

    app = FastAPI(
        title="Homework API",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry support stays off: it would trace through whatever
        # global provider a process has, past our scrubbing (app.core.tracing), and check for
        # one on every request. Ours is installed below, when tracing is on.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.clock = Clock()
    app.state.database = database
    app.state.issuers = issuers
    app.state.rate_limiter = RateLimiter(settings)
    app.state.revocations = RevocationList(database)
    app.state.tokens = TokenService(settings, KeyRing.from_settings(settings), issuers.find)

    install_error_handlers(app)
    openapi_document.install(app)
    app.include_router(health.router)
    metrics_route.install(app)
    app.include_router(oauth.router)
    docs.install(app)
    for router in v1.ROUTERS:
        app.include_router(router)
    webhook_catalog.register(app)

    # Added last, runs first: the body limit and deadline sit inside the request context so
    # that a 413 or 408 is logged and carries a request id. CORS sits outside the request
    # context, so that every answer from inside (a 500 it makes of a crash, 413, 408, 429)
    # carries Access-Control-Allow-Origin and a browser app can read it; preflights are
    # answered by CORS itself. Security headers are outermost: on every answer, preflights too.
    app.add_middleware(BodyTimeoutMiddleware, timeout_seconds=settings.body_timeout_seconds)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, count_requests=settings.metrics_enabled)
    app.add_middleware(CORSMiddleware, **cors.middleware_options(settings))
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.env == Environment.production)
    if tracing is not None:  # outermost: the request's span is current in every middleware
        tracing.instrument_app(app)
    return app


def create_served_app() -> FastAPI:
    """The app as `homework serve` runs it: its start-up objects (modules, tables, schemas,
    routes) frozen out of the garbage collector's reach, so a full collection no longer walks
    them all in the middle of a request (the tail of p99)."""
    settings = get_settings()
    # Again here: with --workers N uvicorn spawns fresh processes, which never ran `serve`'s
    # set-up (without it their access logs went nowhere).
    configure_logging(settings.log_level)
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    return app
