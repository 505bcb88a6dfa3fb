"""OpenTelemetry tracing, on only when a collector is named (HOMEWORK_TRACING_ENDPOINT or
OTEL_EXPORTER_OTLP_ENDPOINT); imported only then (app.core.trace_context.tracing_for).

What is traced: each API request (FastAPI, named by its route template), its SQL statements
(SQLAlchemy, and app.core.driver's statements sent on asyncpg), its outbound httpx calls (a
tenant's JWKS), and each webhook delivery attempt (a span of its own, the child of the request
or worker batch that recorded the event). Spans are exported in batches over OTLP/HTTP.

What never leaves in a span: every span goes through `Scrubbed` before the exporter, which
keeps only the attributes on its allow-list (method, route template, status, database system
and statement, ids of ours), so no URL, query string, header (Authorization), peer address or
exception message gets out whatever an instrumentation records; the statements are our own
with bind parameters, and any quoted literal in them is blanked all the same. A statement with
no request or delivery around it (the worker's polls, start-up) is not traced at all: an idle
worker exports nothing, as it logs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.sdk.trace.sampling import _get_from_env_or_default as sampler_from_env
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import trace_context
from app.core.config import Settings

# Paths whose requests are not traced: probes and scrapes, many a minute, telling nothing.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"
# The attributes a span may keep; any other is dropped before export.
ALLOWED_ATTRIBUTES = frozenset(
    {
        # HTTP, old and new semantic conventions: never a URL, target, host, peer or header.
        "http.method",
        "http.request.method",
        "http.route",
        "http.status_code",
        "http.response.status_code",
        "http.scheme",
        "url.scheme",
        "http.flavor",
        "network.protocol.version",
        "error.type",
        # The database: which one and what statement (bind parameters only).
        "db.system",
        "db.system.name",
        "db.name",
        "db.namespace",
        "db.operation",
        "db.operation.name",
        "db.statement",
        "db.query.text",
        # Ours: ids and outcome classes, never free text.
        "homework.delivery_id",
        "homework.endpoint_id",
        "homework.tenant_id",
        "homework.event_id",
        "homework.attempt",
    }
)
_STATEMENTS = frozenset({"db.statement", "db.query.text"})
_QUOTED = re.compile(r"'(?:[^']|'')*'")
# Constants we write into statements on purpose (app.services.webhooks.dispatch.PENDING): kept.
_KNOWN_LITERALS = frozenset({"'pending'"})
_PROPAGATOR = TraceContextTextMapPropagator()


def _traceparent_of(ids: trace.SpanContext) -> str:
    return trace_context.traceparent(
        format(ids.trace_id, "032x"), format(ids.span_id, "016x"), format(ids.trace_flags, "02x")
    )


def _clean_statement(statement: str) -> str:
    return _QUOTED.sub(lambda m: m.group() if m.group() in _KNOWN_LITERALS else "'?'", statement)


def scrubbed_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    kept = {k: v for k, v in (attributes or {}).items() if k in ALLOWED_ATTRIBUTES}
    for key in _STATEMENTS & kept.keys():
        kept[key] = _clean_statement(str(kept[key]))
    return kept


class Scrubbed(SpanProcessor):
    """Hands the exporter's processor a copy of each ended span with allowed attributes only;
    events keep their name and exception type, a status its code (its description is often an
    exception's message, which can quote a row's values)."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_end(self, span: ReadableSpan) -> None:
        events = [
            Event(
                e.name,
                {k: v for k, v in (e.attributes or {}).items() if k == "exception.type"},
                e.timestamp,
            )
            for e in span.events
        ]
        clean = ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=scrubbed_attributes(span.attributes),
            events=events,
            links=[trace.Link(link.context) for link in span.links],
            kind=span.kind,
            status=Status(span.status.status_code),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
        self.inner.on_end(clean)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class NoOrphanStatements(Sampler):
    """A database statement outside any request or delivery is not sampled: the worker polls
    every job every second, and an idle worker would otherwise export a span per poll. The
    SQLAlchemy instrumentation starts its spans with no attributes; every other client span
    (httpx, our deliveries) starts with some."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid and not attributes:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanStatements({self.delegate.get_description()})"


class Delivery:
    """A webhook attempt's span: its `traceparent` header, and how it ended."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.traceparent = _traceparent_of(span.get_span_context())

    def ended(self, status_code: int | None, delivered: bool) -> None:
        if status_code is not None:
            self.span.set_attribute("http.response.status_code", status_code)
        if not delivered:
            self.span.set_status(Status(StatusCode.ERROR))


class Tracing:
    def __init__(self, service_name: str, exporter: SpanExporter) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            sampler=NoOrphanStatements(sampler_from_env()),
        )
        self.provider.add_span_processor(Scrubbed(BatchSpanProcessor(exporter)))
        self.tracer = self.provider.get_tracer("homework")

    def current(self) -> str | None:
        """The current span's traceparent, if a span is current."""
        ids = trace.get_current_span().get_span_context()
        return _traceparent_of(ids) if ids.is_valid else None

    def instrument_app(self, app: FastAPI) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=EXCLUDED_URLS,
            # No span per ASGI message: the request's span and its statements say it all.
            exclude_spans=["receive", "send"],
            # Named explicitly empty: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* would
            # otherwise capture headers (Authorization) from the environment.
            http_capture_headers_server_request=[],
            http_capture_headers_server_response=[],
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider

        connections = NoOpMeterProvider().get_meter("homework").create_up_down_counter("unused")
        # The statement text only: SQLAlchemy's instrumentation records no parameters, and no
        # sqlcommenter (it would add the route to every statement and defeat its cache).
        EngineTracer(  # type: ignore[no-untyped-call]
            self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
            engine.sync_engine,
            connections,
            enable_commenter=False,
        )

    def instrument_httpx(self, client: AsyncClient) -> None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider)

    @contextmanager
    def delivery(self, origin: str | None, attributes: dict[str, Any]) -> Iterator[Delivery]:
        """A span for one webhook attempt, the child of the event's origin (if it has one)."""
        parent = _PROPAGATOR.extract({trace_context.TRACEPARENT: origin}) if origin else None
        with self.tracer.start_as_current_span(
            "webhook delivery", context=parent, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield Delivery(span)

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()
        if trace_context.active() is self:
            trace_context.activate(None)


def start(
    settings: Settings, service_name: str, *, exporter: SpanExporter | None = None
) -> Tracing:
    """This process's tracing, exporting to `exporter` (tests) or to the OTLP/HTTP collector:
    HOMEWORK_TRACING_ENDPOINT if set (its /v1/traces), else the OTEL_EXPORTER_OTLP_* variables."""
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.tracing_endpoint
        exporter = OTLPSpanExporter(
            endpoint=f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None
        )
    tracing = Tracing(service_name, exporter)
    trace_context.activate(tracing)
    return tracing
