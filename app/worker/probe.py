"""The worker's own small HTTP port (HOMEWORK_WORKER_PORT): GET /healthz for a liveness probe
and GET /metrics for Prometheus. Served by aiohttp's server (aiohttp already sends our
webhooks) on the worker's own event loop, so an event loop that something blocks fails the
probe too, and it installs no signal handlers of its own (the worker's SIGTERM stays ours).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from app.core import metrics
from app.worker.liveness import Liveness

HEALTH_PATH = "/healthz"


def _application(liveness: Liveness, *, with_metrics: bool) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        stalled = liveness.stalled()
        if stalled:
            return web.json_response({"status": "stalled", "stalled": stalled}, status=503)
        return web.json_response({"status": "ok", "loops": liveness.loops})

    async def scrape(_request: web.Request) -> web.Response:
        # The content type carries a version parameter, which aiohttp wants in the header.
        headers = {"Content-Type": metrics.CONTENT_TYPE}
        # Off the event loop, as the API's: its loops are what /healthz vouches for.
        return web.Response(body=await asyncio.to_thread(metrics.exposition), headers=headers)

    application = web.Application()
    application.router.add_get(HEALTH_PATH, healthz)
    if with_metrics:
        application.router.add_get("/metrics", scrape)
    return application


@asynccontextmanager
async def serving(
    liveness: Liveness, host: str, port: int, *, with_metrics: bool = True
) -> AsyncIterator[None]:
    application = _application(liveness, with_metrics=with_metrics)
    runner = web.AppRunner(application, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


def check(port: int, timeout: float = 3.0) -> tuple[bool, str]:
    """`homework worker --check`: ask a running worker's probe on this machine (for a
    container's HEALTHCHECK, where an HTTP probe is not at hand). Blocking: a command's."""
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return True, answer.read().decode()
    except urllib.error.HTTPError as error:
        return False, error.read().decode()
    except OSError as error:
        return False, f"no worker answers on port {port}: {type(error).__name__}"
