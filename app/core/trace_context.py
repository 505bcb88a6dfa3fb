"""W3C trace context without OpenTelemetry: the trace a request or a worker batch belongs to.

Every access-log line carries a trace id and every webhook delivery a `traceparent`, whether
or not tracing is on, so a receiver's log line, our access log and (when on) our spans can be
joined on one id. This module imports nothing of OpenTelemetry: with tracing off (the default)
a request costs a header lookup and 16 random bytes. With it on, app.core.tracing registers
itself here (`activate`), and the ids are those of the current span.

The *origin* is the traceparent of whatever is running now (a request, a worker batch); an
event recorded now keeps it (app.services.events), so its deliveries, sent later by the worker,
continue that trace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.core.tracing import Tracing

TRACEPARENT = "traceparent"
# version 00: 2 hex, 32 hex trace id, 16 hex parent id, 2 hex flags (lower case, W3C).
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
SAMPLED = "01"

_origin: ContextVar[str | None] = ContextVar("homework_trace_origin", default=None)
_active: Tracing | None = None


def parse(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) of a valid version-00 traceparent, else None."""
    match = _TRACEPARENT.match(value.strip()) if value else None
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return trace_id, span_id, flags


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def traceparent(trace_id: str, span_id: str, flags: str = SAMPLED) -> str:
    return f"00-{trace_id}-{span_id}-{flags}"


def trace_id_of(value: str | None) -> str | None:
    parsed = parse(value)
    return parsed[0] if parsed else None


# The process's tracing, if on.


def enabled(settings: Settings) -> bool:
    """On if our setting or OpenTelemetry's standard endpoint variable names a collector."""
    return bool(
        settings.tracing_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_for(settings: Settings, service_name: str) -> Tracing | None:
    """The process's tracing: the one already started (by an earlier app of this process, or a
    test with its own exporter), or a new one if the settings ask for it; None when off."""
    if _active is None and enabled(settings):
        from app.core.tracing import start  # only now: off costs no import

        start(settings, settings.tracing_service_name or service_name)
    return _active


def active() -> Tracing | None:
    return _active


def activate(tracing: Tracing | None) -> None:
    global _active
    _active = tracing


# The origin: the trace of the work running now.


def begin(offered: str | None) -> tuple[str, object]:
    """Bind the origin of a request (its span's, or else the caller's `traceparent`, or else a
    new trace); returns its trace id and a token for `end`."""
    current = _active.current() if _active is not None else None
    if current is None:
        parsed = parse(offered) if offered else None
        ids = os.urandom(24).hex()  # one call for both ids: this runs on every request
        trace_id, flags = (parsed[0], parsed[2]) if parsed else (ids[:32], SAMPLED)
        current = traceparent(trace_id, ids[32:], flags)
    return current[3:35], _origin.set(current)


def end(token: object) -> None:
    _origin.reset(token)  # type: ignore[arg-type]


def origin() -> str | None:
    """The traceparent of the request or worker batch running now, if any."""
    return _origin.get()


@contextmanager
def new_origin() -> Iterator[None]:
    """A fresh trace for a worker batch: the events it records carry it to their deliveries."""
    token = _origin.set(traceparent(new_trace_id(), new_span_id()))
    try:
        yield
    finally:
        _origin.reset(token)


# Outbound: a webhook attempt.


class OutboundTrace(Protocol):
    traceparent: str

    def ended(self, status_code: int | None, delivered: bool) -> None: ...


class _Untraced:
    def __init__(self, origin: str | None) -> None:
        parsed = parse(origin)
        trace_id, flags = (parsed[0], parsed[2]) if parsed else (new_trace_id(), SAMPLED)
        self.traceparent = traceparent(trace_id, new_span_id(), flags)

    def ended(self, status_code: int | None, delivered: bool) -> None:
        pass


@contextmanager
def delivery(origin: str | None, **ids: str | int) -> Iterator[OutboundTrace]:
    """The trace of one webhook attempt: a child of `origin` (the event's) if it has one, else
    a new trace; with tracing on, a span (its attributes: `ids`, as homework.<name>)."""
    if _active is None:
        yield _Untraced(origin)
        return
    with _active.delivery(origin, {f"homework.{k}": v for k, v in ids.items()}) as traced:
        yield traced
