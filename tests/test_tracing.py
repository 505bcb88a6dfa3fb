"""Tracing: off by default with nothing installed; when on, spans for requests, statements and
outbound calls that carry no PHI, no credential and no query string; the same trace id in the
access log; and webhook deliveries that continue the trace of the request that caused them.

Spans go to an in-memory exporter through the service's own pipeline (scrubbing processor,
batch processor), flushed before they are read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from joserfc.jwk import RSAKey
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.core import trace_context
from app.core.config import Settings
from app.core.tracing import Tracing, start
from tests.conftest import client_for
from tests.homework_helpers import assign, complete, freeze
from tests.jwks_server import JwksHost, serve_jwks
from tests.test_identity_provider import idp_token, read_client, trust
from tests.webhook_receiver import (
    Receiver,
    app_for,
    create_endpoint,
    deliver,
    serve_receiver,
)
from tests.world import build_world

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
MARKERS = ("PHI-MARKER-NOTE", "PHI-MARKER-REFLECTION", "PHI-MARKER-TITLE", "PHI-MARKER-QUERY")


@dataclass
class Traced:
    tracing: Tracing
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        self.tracing.flush()
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def traced(settings: Settings) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    tracing = start(settings, "homework-test", exporter=exporter)
    try:
        yield Traced(tracing, exporter)
    finally:
        tracing.shutdown()
    assert trace_context.active() is None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as running:
        yield running


@pytest.fixture
def jwks_host() -> Iterator[JwksHost]:
    with serve_jwks() as host:
        yield host


def _allowing(make_settings: Any, *ports: int) -> Settings:
    settings: Settings = make_settings(
        outbound_allow_http=True,
        outbound_allowed_hosts=",".join(f"127.0.0.1:{port}" for port in ports),
    )
    return settings


@pytest.fixture
async def traced_app(
    make_settings: Any, receiver: Receiver, jwks_host: JwksHost, traced: Traced
) -> AsyncIterator[FastAPI]:
    async with app_for(_allowing(make_settings, receiver.port, jwks_host.port)) as application:
        yield application


def _server_span(spans: list[ReadableSpan], route: str, method: str = "POST") -> ReadableSpan:
    (span,) = [
        s
        for s in spans
        if s.kind is SpanKind.SERVER
        and (s.attributes or {}).get("http.route") == route
        and method in s.name
    ]
    return span


def _trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def _everything_in(span: ReadableSpan) -> str:
    """Every string an exporter would send for this span."""
    parts: list[Any] = [span.name, span.status.description or ""]
    parts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        parts += [event.name, *[f"{k}={v}" for k, v in (event.attributes or {}).items()]]
    for link in span.links:
        parts += [f"{k}={v}" for k, v in (link.attributes or {}).items()]
    return "\n".join(str(p) for p in parts)


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.name == "homework.access"]


async def test_a_traced_flow_has_spans_without_phi_and_deliveries_continue_its_trace(
    traced_app: FastAPI,
    traced: Traced,
    receiver: Receiver,
    jwks_host: JwksHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    world = await build_world(traced_app)
    clock = freeze(world, "2026-11-22T12:00:00Z")
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-trace"})
    jwks_host.keys = [key.as_dict(private=False)]
    idp_bearer = idp_token(key, "RS256")
    async with client_for(traced_app) as http:
        endpoint = await create_endpoint(
            http, world, receiver.url("/hook/RECEIVER-PATH-TOKEN?key=RECEIVER-QUERY-TOKEN")
        )
        receiver.secrets = [endpoint["secret"]]
        assert (await trust(http, world, jwks_host)).status_code == 200
        # A tenant's IdP token: its JWKS is fetched with httpx, traced as a client span.
        assert (await read_client(http, world, idp_bearer)).status_code == 200
        created = await assign(
            http,
            world,
            world.a.clients["A1"],
            {"type": "once", "due_at": "2026-11-22T20:00"},
            title="PHI-MARKER-TITLE",
        )
        assert created.status_code == 201, created.text
        occurrence = created.json()["occurrences"][0]["id"]
        done = await complete(
            http,
            world,
            occurrence,
            status="done",
            answers={"mood": 6, "note": "PHI-MARKER-NOTE"},
            reflection="PHI-MARKER-REFLECTION",
        )
        assert done.status_code == 201, done.text
        listed = await http.get(
            "/v1/assignments",
            params={"client_id": world.a.clients["A1"], "kind": "PHI-MARKER-QUERY"},
            headers=world.headers("clinician_a1"),
        )
        assert listed.status_code in (200, 422)
        assert (await http.get("/healthz")).status_code == 200
    await deliver(world, receiver, clock.now())
    spans = traced.spans()

    # Spans for the request, its statements and the JWKS fetch, named by route template.
    assigned = _server_span(spans, "/v1/assignments")
    assert assigned.name == "POST /v1/assignments"
    statements = [s for s in spans if "db.statement" in (s.attributes or {})]
    assert any(s.parent and s.parent.span_id == assigned.context.span_id for s in statements)  # type: ignore[union-attr]
    # The completion's events are written by app.core.driver (straight to asyncpg on
    # PostgreSQL): their statement is a span of the completion's request too.
    completed = _server_span(spans, "/v1/completions")
    assert [
        s
        for s in statements
        if s.parent
        and s.parent.span_id == completed.context.span_id  # type: ignore[union-attr]
        and str((s.attributes or {})["db.statement"]).startswith("INSERT INTO events")
    ]
    fetches = [s for s in spans if s.instrumentation_scope.name.endswith("httpx")]  # type: ignore[union-attr]
    assert fetches and all(s.kind is SpanKind.CLIENT for s in fetches)
    assert not [s for s in spans if "/healthz" in _everything_in(s)]

    # Nothing an exporter would send carries PHI, a credential, a query string or a URL.
    secrets = [*MARKERS, "RECEIVER-PATH-TOKEN", "RECEIVER-QUERY-TOKEN", idp_bearer]
    secrets += [*world.tokens.values(), "Bearer", "kind=", f"127.0.0.1:{receiver.port}"]
    for span in spans:
        text = _everything_in(span)
        assert not [s for s in secrets if s in text], (span.name, text)
        keys = set(span.attributes or {})
        assert not keys & {"http.url", "http.target", "url.full", "url.query", "url.path"}
        assert not [k for k in keys if "header" in k]

    # The access log line carries the request's trace id.
    (line,) = [
        r for r in _access_lines(caplog) if r.path == "/v1/assignments" and r.method == "POST"
    ]
    assert line.trace_id == _trace_id(assigned)

    # The delivery of the event that request recorded continues its trace.
    (delivered,) = [r for r in receiver.requests if r.payload["type"] == "assignment.created"]
    trace_id, parent_id, _flags = trace_context.parse(delivered.headers["traceparent"]) or (
        "",
        "",
        "",
    )
    assert trace_id == _trace_id(assigned)
    (attempt,) = [
        s
        for s in spans
        if s.name == "webhook delivery"
        and (s.attributes or {}).get("homework.event_id") == delivered.payload["id"]
    ]
    assert attempt.parent is not None and attempt.parent.span_id == assigned.context.span_id  # type: ignore[union-attr]
    assert format(attempt.context.span_id, "016x") == parent_id  # type: ignore[union-attr]
    assert (attempt.attributes or {})["homework.endpoint_id"] == endpoint["id"]
    assert (attempt.attributes or {})["http.response.status_code"] == 200


async def test_an_idle_worker_round_exports_no_span(
    traced_app: FastAPI, traced: Traced, receiver: Receiver
) -> None:
    """Polls with nothing to do are statements outside any request: not traced."""
    world = await build_world(traced_app)
    traced.spans()
    traced.exporter.clear()
    await deliver(world, receiver, freeze(world, "2026-11-22T12:00:00Z").now())
    assert traced.spans() == []


# Off: the default.


def test_with_tracing_off_no_tracing_code_is_even_imported(tmp_path: Any) -> None:
    """FastAPI itself imports the OpenTelemetry API (its own tracing is switched off); the SDK,
    the exporter, the instrumentations and our set-up are not loaded at all."""
    script = (
        "import sys\n"
        "from app.main import create_app\n"
        "app = create_app()\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.instrumentation', 'opentelemetry.exporter',"
        " 'app.core.tracing')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "print(loaded, getattr(app, '_is_instrumented_by_opentelemetry', False))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOMEWORK_", "OTEL_"))}
    env |= {"HOMEWORK_ENV": "test", "HOMEWORK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[] False", done.stderr


async def test_with_tracing_off_lines_and_deliveries_still_carry_a_trace_id(
    make_settings: Any, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    assert trace_context.active() is None
    caplog.set_level(logging.INFO, logger="homework.access")
    async with app_for(_allowing(make_settings, receiver.port)) as application:
        engine_listeners = application.state.database.engine.sync_engine.dispatch
        assert not [
            f
            for f in engine_listeners.before_cursor_execute
            if getattr(f, "__module__", "").startswith("opentelemetry")
        ]
        world = await build_world(application)
        clock = freeze(world, "2026-11-22T12:00:00Z")
        caller = "0af7651916cd43dd8448eb211c80319c"
        async with client_for(application) as http:
            endpoint = await create_endpoint(http, world, receiver.url())
            receiver.secrets = [endpoint["secret"]]
            sent = await http.post(
                "/v1/assignments",
                json={
                    "client_id": world.a.clients["A1"],
                    "template_id": "tpl_builtin_mood_log",
                    "schedule": {"type": "once", "due_at": "2026-11-22T20:00"},
                },
                headers={
                    **world.headers("clinician_a1"),
                    "traceparent": f"00-{caller}-b7ad6b7169203331-01",
                },
            )
            assert sent.status_code == 201, sent.text
            unsent = await assign(
                http, world, world.a.clients["A1"], {"type": "once", "due_at": "2026-11-23T20:00"}
            )
            assert unsent.status_code == 201
        await deliver(world, receiver, clock.now())

    lines = [r for r in _access_lines(caplog) if r.path == "/v1/assignments"]
    assert lines[0].trace_id == caller
    generated = lines[1].trace_id
    assert TRACE_ID.match(generated) and generated != caller
    by_assignment = {
        r.payload["data"]["assignment_id"]: trace_context.parse(r.headers["traceparent"])
        for r in receiver.requests
        if r.payload["type"] == "assignment.created"
    }
    first = by_assignment[sent.json()["id"]]
    second = by_assignment[unsent.json()["id"]]
    assert first is not None and second is not None
    # The caller's trace, with a span id of the delivery's own.
    assert first[0] == caller and first[1] != "b7ad6b7169203331" and first[2] == "01"
    assert second[0] == generated
    assert json.loads(receiver.requests[0].body)["type"]  # still the signed body, untouched
    assert all(r.verified_with for r in receiver.requests)


@pytest.fixture
def collector() -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    """A stand-in OTLP/HTTP collector on loopback: records each export's path and body."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


async def test_the_tracing_endpoint_setting_exports_over_otlp_http(
    make_settings: Any, collector: tuple[int, list[tuple[str, bytes]]]
) -> None:
    """The set-up as deployed: the setting alone turns tracing on, and scrubbed spans reach
    the collector's /v1/traces in OTLP protobuf."""
    port, received = collector
    settings = make_settings(tracing_endpoint=f"http://127.0.0.1:{port}")
    async with app_for(settings) as application:
        tracing = trace_context.active()
        assert tracing is not None
        try:
            async with client_for(application) as http:
                answered = await http.get("/v1/clients?q=PHI-MARKER-QUERY")
                assert answered.status_code == 401
            tracing.flush()
        finally:
            tracing.shutdown()
    assert received and {path for path, _ in received} == {"/v1/traces"}
    exported = b"".join(body for _, body in received)
    assert b"GET /v1/clients" in exported and b"homework-api" in exported
    assert b"PHI-MARKER-QUERY" not in exported
