"""A real webhook receiver on loopback, standing in for a vendor's backend.

It answers from a script (one `(status, headers, body)` per request, in order, then a default),
records every request, and verifies every delivery with the `standardwebhooks` package: an
implementation of Standard Webhooks that is not ours, as a vendor's would be.

Tests move time instead of sleeping, so the receiver's clock (which `standardwebhooks` uses to
refuse timestamps more than 5 minutes off) is the test's: `receiver.now`. Only that reference
time is moved; the signature check is the library's own.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import standardwebhooks.webhooks as standard
from fastapi import FastAPI
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.config import Settings
from app.main import create_app
from app.models import Event, WebhookAttempt, WebhookDelivery
from app.services.events import EventType, record_event
from app.worker.loop import run_once
from tests.world import World

Response = tuple[int, dict[str, str], bytes]
OK: Response = (200, {}, b"ok")


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    # The secrets (of `receiver.secrets`) that this delivery verified with, each on its own.
    verified_with: list[str]
    errors: list[str]
    received_at: float = 0.0  # time.time() as the request arrived

    @property
    def signed_at(self) -> int:
        return int(self.headers["webhook-timestamp"])

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int = 0
    script: deque[Response] = field(default_factory=deque)
    default: Response = OK
    secrets: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    now: datetime | None = None  # the receiver's clock; None: the real one
    drip_seconds: float = 0.0  # > 0: the answer's body is written a byte at a time, this apart
    # Called (in the server's thread) while each request is being answered.
    while_answering: Callable[[], None] | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *responses: Response) -> None:
        self.script.extend(responses)

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.requests]

    def verify(self, body: bytes, headers: dict[str, str]) -> tuple[list[str], list[str]]:
        verified, errors = [], []
        for secret in self.secrets:
            try:
                with _clock_at(self.now):
                    Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError as exc:
                errors.append(str(exc))
        return verified, errors


_clock_lock = threading.Lock()


@contextmanager
def _clock_at(now: datetime | None) -> Iterator[None]:
    """standardwebhooks reads `datetime.now()` for its 5-minute timestamp tolerance."""
    if now is None:
        yield
        return

    class At(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now

    with _clock_lock:
        real = standard.datetime  # type: ignore[attr-defined]
        standard.datetime = At  # type: ignore[attr-defined]
        try:
            yield
        finally:
            standard.datetime = real  # type: ignore[attr-defined]


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            verified, errors = receiver.verify(body, headers)
            if receiver.while_answering is not None:
                receiver.while_answering()
            with lock:
                receiver.requests.append(
                    Received(self.path, headers, body, verified, errors, arrived)
                )
                status, extra, answer = (
                    receiver.script.popleft() if receiver.script else receiver.default
                )
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if not receiver.drip_seconds:
                self.wfile.write(answer)
                return
            try:
                for byte in answer:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(receiver.drip_seconds)
            except OSError:  # the sender gave up waiting, as it should
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# Shared steps for webhook tests.


def receiver_settings(make_settings: Any, receiver: Receiver, **overrides: Any) -> Settings:
    """The loopback receiver allowed explicitly, as an operator would allow an on-premise one."""
    settings: Settings = make_settings(
        outbound_allow_http=True, outbound_allowed_hosts=f"127.0.0.1:{receiver.port}", **overrides
    )
    return settings


@asynccontextmanager
async def app_for(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    try:
        yield application
    finally:
        await application.state.database.dispose()


def utc(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def create_endpoint(
    http: httpx.AsyncClient,
    world: World,
    url: str,
    event_types: Sequence[str] = (),
    role: str = "system_a",
) -> dict[str, Any]:
    created = await http.post(
        "/v1/webhook-endpoints",
        json={"url": url, "event_types": list(event_types)},
        headers=world.headers(role),
    )
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    assert endpoint["secret"].startswith("whsec_")
    return endpoint


async def deliver(
    world: World, receiver: Receiver, now: datetime, batch_size: int = 50
) -> dict[str, int]:
    """One worker round at `now`, the receiver's clock moved there too."""
    receiver.now = now
    return await run_once(world.app.state.database, now, batch_size)


async def add_event(
    world: World,
    event_type: EventType = EventType.assignment_created,
    tenant_id: str | None = None,
    occurred_at: datetime | None = None,
    **ids: str,
) -> str:
    """An event committed as a service records it (in its own transaction)."""
    async with world.app.state.database.sessionmaker() as session, session.begin():
        event = record_event(
            session,
            tenant_id or world.a.id,
            event_type,
            client_id=world.a.clients["A1"],
            **(ids or {"assignment_id": "asg_01jd8x5m2q7c9v3k4t6w8y0z1b"}),
        )
        if occurred_at is not None:
            event.occurred_at = occurred_at
        await session.flush()
        return event.id


async def deliveries_of(world: World, event_id: str | None = None) -> list[WebhookDelivery]:
    async with world.app.state.database.sessionmaker() as session:
        statement = select(WebhookDelivery).order_by(WebhookDelivery.id)
        if event_id is not None:
            statement = statement.where(WebhookDelivery.event_id == event_id)
        return list((await session.scalars(statement)).all())


async def attempts_of(world: World, delivery_id: str) -> list[WebhookAttempt]:
    async with world.app.state.database.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_id == delivery_id)
                    .order_by(WebhookAttempt.number)
                )
            ).all()
        )


async def event_row(world: World, event_id: str) -> Event | None:
    async with world.app.state.database.sessionmaker() as session:
        return await session.get(Event, event_id)
