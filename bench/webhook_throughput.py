"""Webhook delivery, end to end on PostgreSQL: how many deliveries a worker sustains, and how
long an event waits between its commit and the first POST to the vendor.

    .venv/bin/python -m bench.webhook_throughput [--events 5000] [--stream 1000] [--rate 100]

Creates its own PostgreSQL database (next to HOMEWORK_TEST_POSTGRES_URL's, by default
postgresql+asyncpg://postgres@127.0.0.1:5432/test), migrates it, and starts a receiver in a
process of its own: a small asyncio HTTP/1.1 server on loopback that answers 200 at once and
notes when each `webhook-id` first arrives (wall clock, shared by every process here). One
tenant, one endpoint subscribed to everything, default settings (batch 200, 4 POSTs at once per
endpoint, 32 overall).

1. **Backlog**: `--events` events are committed (500 per transaction, each commit's time noted),
   then the worker's own jobs, `fan_out_events` and `dispatch_webhooks`, run as one-off rounds
   (`run_once`, as `homework worker --once` does) until the receiver has them all. Reports
   deliveries per second, sustained from the first round to the last arrival, and
   commit-to-first-attempt percentiles (queueing by construction). The continuous worker's
   drain rate is bench.worker_isolation's.
2. **Stream**: a worker process runs the real loop (`run_forever`: each job on its own, fan-out
   woken at once by the events trigger's NOTIFY) while this process commits `--stream` events,
   one per transaction, `--rate` a second. Reports commit-to-first-attempt percentiles: what a
   vendor waits for in normal operation.

Every delivery is checked to have been attempted exactly once. The database is dropped at the
end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.config import Environment, Settings
from app.core.data_keys import DataKeys
from app.core.db import Database
from app.core.ids import new_id
from app.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.services import tenants
from app.services.events import EventType, record_event
from app.services.webhooks import sealed_secrets
from app.services.webhooks.signing import new_signing_secret
from app.worker.jobs import JOBS as ALL_JOBS
from app.worker.jobs import Job
from app.worker.loop import run_forever, run_once

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
COMMIT_BATCH = 500
JOBS: tuple[Job, ...] = tuple(
    job for job in ALL_JOBS if job.name in ("fan_out_events", "dispatch_webhooks")
)


# The receiver: its own process, so that it does not share an event loop (or a GIL) with us.


def _receiver_process(port_out: Connection) -> None:
    asyncio.run(_receive(port_out))


async def _receive(port_out: Connection) -> None:
    first_seen: dict[str, float] = {}
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("GET /arrivals"):
                    body = json.dumps({"first_seen": first_seen, "requests": seen}).encode()
                else:
                    seen += 1
                    first_seen.setdefault(headers.get("webhook-id", ""), arrived)
                    body = b"ok"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port_out.send(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


async def _arrivals(port: int) -> tuple[dict[str, float], int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /arrivals HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    data = json.loads(await reader.readexactly(length))
    writer.close()
    return data["first_seen"], data["requests"]


# The worker process of the stream phase.


def _worker_process(url: str, port: int, stop: ProcessEvent) -> None:
    asyncio.run(_work(url, port, stop))


async def _work(url: str, port: int, stop_process: ProcessEvent) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_forever(_settings(url, port), stop, jobs=JOBS))
    await asyncio.to_thread(stop_process.wait)
    stop.set()
    await worker


# The producer: events committed, each commit's time noted.


def _settings(url: str, port: int = 0) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        env=Environment.test,
        database_url=url,
        outbound_allow_http=True,
        outbound_allowed_hosts=f"127.0.0.1:{port}",
        log_level="WARNING",
    )


async def _setup(database: Database, port: int) -> str:
    # Sealed as the API stores it, so the worker pays for opening it as in production.
    endpoint_id, keys = new_id("whe"), DataKeys.from_settings(database.settings)
    secret = sealed_secrets.seal(keys, endpoint_id, "secret", new_signing_secret())
    async with database.sessionmaker() as session, session.begin():
        issued = await tenants.create_tenant(session, "bench")
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                tenant_id=issued.tenant_id,
                url=f"http://127.0.0.1:{port}/hooks",
                event_types=[],
                enabled=True,
                secret=secret,
            )
        )
    return issued.tenant_id


async def _commit_events(
    database: Database, tenant_id: str, count: int, committed: dict[str, float]
) -> None:
    async with database.sessionmaker() as session, session.begin():
        events = [
            record_event(
                session,
                tenant_id,
                EventType.completion_created,
                client_id="clt_01m7tkk9aacm9jd7gd6zsaekf4",
                completion_id=f"cmp_{uuid.uuid4().hex[:26]}",
            )
            for _ in range(count)
        ]
        await session.flush()
    at = time.time()
    for event in events:
        committed[event.id] = at


def _percentiles(waits: Sequence[float]) -> str:
    ordered = sorted(waits)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return (
        f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms"
    )


async def _once_each(database: Database, expected: int) -> str:
    async with database.sessionmaker() as session:
        attempts = await session.scalar(select(func.count()).select_from(WebhookAttempt))
        delivered = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.state == "delivered")
        )
    verdict = "ok" if attempts == delivered == expected else "MISMATCH"
    return f"{delivered} delivered, {attempts} attempts ({verdict})"


async def _backlog(url: str, port: int, tenant_id: str, events: int) -> bool:
    database = Database(_settings(url, port))
    committed: dict[str, float] = {}
    try:
        started = time.perf_counter()
        for offset in range(0, events, COMMIT_BATCH):
            await _commit_events(database, tenant_id, min(COMMIT_BATCH, events - offset), committed)
        print(f"  committed {events:,} events in {time.perf_counter() - started:.1f} s")
        batch = database.settings.worker_batch_size
        start_wall = time.time()
        for _ in range(100):
            await run_once(database, datetime.now(UTC), batch, jobs=JOBS)
            first_seen, requests = await _arrivals(port)
            if all(event_id in first_seen for event_id in committed):
                break
        else:
            print("  !! not everything arrived")
            return False
        last = max(first_seen[e] for e in committed)
        print(
            f"  {events:,} deliveries in {last - start_wall:.2f} s: "
            f"{events / (last - start_wall):,.0f} deliveries/s sustained"
        )
        print(
            "  commit to first attempt: "
            + _percentiles([first_seen[e] - committed[e] for e in committed])
        )
        check = await _once_each(database, events)
        print(f"  {check}; the receiver saw {requests:,} requests")
        return "ok" in check and requests == events
    finally:
        await database.dispose()


async def _stream(url: str, port: int, tenant_id: str, events: int, rate: float) -> bool:
    database = Database(_settings(url, port))
    committed: dict[str, float] = {}
    _, before = await _arrivals(port)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    worker = context.Process(target=_worker_process, args=(url, port, stop), daemon=True)
    worker.start()
    try:
        await asyncio.sleep(3)  # the worker's imports, pool and LISTEN
        started = time.perf_counter()
        for n in range(events):
            await _commit_events(database, tenant_id, 1, committed)
            pause = started + (n + 1) / rate - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
        for _ in range(300):
            first_seen, requests = await _arrivals(port)
            if all(event_id in first_seen for event_id in committed):
                break
            await asyncio.sleep(0.1)
        else:
            print("  !! not everything arrived")
            return False
        print(
            f"  {events:,} events committed one by one at {rate:.0f}/s "
            f"({time.perf_counter() - started:.1f} s)"
        )
        print(
            "  commit to first attempt: "
            + _percentiles([first_seen[e] - committed[e] for e in committed])
        )
        print(f"  the receiver saw {requests - before:,} requests for them")
        return requests - before == events
    finally:
        stop.set()
        worker.join(15)
        if worker.is_alive():
            worker.terminate()
        await database.dispose()


async def main(events: int, stream: int, rate: float) -> int:
    admin_url = os.environ.get("HOMEWORK_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = f"homework_bench_{uuid.uuid4().hex[:12]}"
    url = make_url(admin_url).set(database=name).render_as_string(False)
    admin = await asyncpg.connect(
        make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    receiver = context.Process(target=_receiver_process, args=(port_out,), daemon=True)
    receiver.start()
    try:
        port = port_in.recv()
        await migrations.upgrade(_settings(url))
        server = await admin.fetchval("SHOW server_version")
        defaults = _settings(url)
        print(
            f"PostgreSQL {server}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
            f"one endpoint, batch {defaults.worker_batch_size}, "
            f"{defaults.webhook_max_per_endpoint} POSTs at once per endpoint, a receiver "
            "process answering 200 on loopback"
        )
        setup = Database(_settings(url, port))
        try:
            tenant_id = await _setup(setup, port)
        finally:
            await setup.dispose()
        print(f"\n1. backlog: {events:,} events, then one worker's rounds until all arrive")
        ok = await _backlog(url, port, tenant_id, events)
        print(
            f"\n2. stream: a worker process (`run_forever`, woken by NOTIFY), {rate:.0f} events/s"
        )
        ok = await _stream(url, port, tenant_id, stream, rate) and ok
    finally:
        receiver.terminate()
        receiver.join(5)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0 if ok else 1


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="the backlog")
    parser.add_argument("--stream", type=int, default=1000, help="events in the stream")
    parser.add_argument("--rate", type=float, default=100, help="stream events per second")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.events, arguments.stream, arguments.rate)))


if __name__ == "__main__":
    run()
