"""W3C traceparent handling without OpenTelemetry: what is accepted from a caller, and the
trace an access line and an event get when tracing is off."""

from __future__ import annotations

import pytest

from app.core import trace_context

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read() -> None:
    assert trace_context.parse(VALID) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "01",
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # a version we do not know
        VALID + "-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # one digit short
    ],
)
def test_anything_else_is_ignored(value: str | None) -> None:
    assert trace_context.parse(value) is None


def test_off_a_request_continues_its_callers_trace_or_starts_one() -> None:
    assert trace_context.active() is None
    trace_id, token = trace_context.begin(VALID)
    origin = trace_context.origin()
    trace_context.end(token)
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    # The event's origin: the caller's trace and flags, a span id of ours.
    assert origin is not None and origin.startswith(f"00-{trace_id}-") and origin.endswith("-01")
    assert trace_context.parse(origin) is not None and "00f067aa0ba902b7" not in origin
    assert trace_context.origin() is None

    fresh, token = trace_context.begin("00-zz-bad-01")
    trace_context.end(token)
    assert trace_context.trace_id_of(VALID) != fresh and len(fresh) == 32
    assert int(fresh, 16) != 0


def test_off_a_delivery_continues_the_events_trace_with_a_span_id_of_its_own() -> None:
    with trace_context.delivery(VALID, delivery_id="whd_1") as first:
        pass
    with trace_context.delivery(VALID, delivery_id="whd_1") as retry:
        pass
    for sent in (first.traceparent, retry.traceparent):
        parsed = trace_context.parse(sent)
        assert parsed is not None and parsed[0] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first.traceparent != retry.traceparent  # each attempt its own span id
    with trace_context.delivery(None) as orphan:  # an event recorded before migration 0015
        assert trace_context.parse(orphan.traceparent) is not None
