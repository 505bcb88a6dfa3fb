"""GET /metrics on the API's port, for Prometheus (not part of the API document)."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from app.core import metrics


async def scrape(_request: Request) -> Response:
    # Off the event loop: with several processes this reads each one's file.
    body = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def install(app: FastAPI) -> None:
    settings = app.state.settings
    if settings.metrics_enabled and settings.metrics_port is None:
        app.add_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
