"""The webhooks we send, as the OpenAPI 3.1 `webhooks` section: one entry per event type, each
saying when it fires, with a concrete payload and the three Standard Webhooks headers.

Documentation only: these are requests we make to the vendor, so nothing here is served.
Every event type of `app.services.events.EventType` (and `webhook.test`) must have an entry;
`register` refuses to build an app that would document fewer.
"""

# No `from __future__ import annotations`: each entry's annotations carry its own example and
# must be evaluated where the entry is made.

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import Body, FastAPI, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import (
    EXAMPLE_ADJUSTMENT_ID,
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_COMPLETION_ID,
    EXAMPLE_OCCURRENCE_IDS,
    EXAMPLE_REMINDER_ID,
    EXAMPLE_TIME_ZONE,
)
from app.schemas.webhooks import EXAMPLE_ENDPOINT_ID, EXAMPLE_EVENT_ID, TEST_EVENT
from app.services.events import EventType

ALL_TYPES = (*(t.value for t in EventType), TEST_EVENT)

WebhookEventType = Literal[
    "assignment.created",
    "assignment.updated",
    "assignment.cancelled",
    "assignment.completed",
    "occurrence.missed",
    "completion.created",
    "completion.updated",
    "completion.reviewed",
    "completion.distress_flagged",
    "adjustment.proposed",
    "adjustment.resolved",
    "reminder.due",
    "client.erased",
    "webhook.test",
]


class WebhookPayload(BaseModel):
    """The JSON body of every delivery. Thin by construction: ids, the type, the time, a
    sequence number and, where fields changed, their names; never anything a person wrote."""

    model_config = ConfigDict(title="WebhookPayload")

    id: str = Field(
        description="The event's id, also sent as the `webhook-id` header. The same on every "
        "retry and redelivery of this event: dedupe on it.",
        examples=[EXAMPLE_EVENT_ID],
    )
    type: WebhookEventType = Field(description="What happened; one entry of this catalogue.")
    timestamp: datetime = Field(description="When it happened, in UTC.")
    sequence: int = Field(
        description="Your tenant's event number: one more for each event (of every type, "
        "test events included) in the order we send them. Order by it; do not wait for a "
        "gap to fill, since an endpoint subscribed to some types sees gaps, and a retried "
        "delivery arrives after later ones."
    )
    data: dict[str, str | list[str]] = Field(
        description="The ids involved, by name (`client_id`, `assignment_id`, ...) and, "
        "where fields changed, `changed_fields`: their names, never their values. Read the "
        "resource by its id for the current state."
    )


WebhookId = Annotated[
    str,
    Header(
        alias="webhook-id",
        description="The event's id (`evt_...`): the same on every retry and redelivery. "
        "Receivers dedupe on it.",
    ),
]
WebhookTimestamp = Annotated[
    str,
    Header(
        alias="webhook-timestamp",
        description="Unix seconds when this attempt was signed. Standard Webhooks libraries "
        "refuse one more than 5 minutes from their clock (replays).",
    ),
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description="`v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}'>` "
        "keyed with the endpoint's `whsec_` secret (base64 after the prefix). During a secret "
        "rotation's overlap two signatures, space-separated: one per secret; either verifies.",
    ),
]
Traceparent = Annotated[
    str,
    Header(
        alias="traceparent",
        description="W3C Trace Context (`00-<trace id>-<span id>-<flags>`): the trace of the API "
        "call (or background job) that caused the event, with a span id of this attempt's "
        "own; the trace id is the one your call got back in our logs and traces. Not signed: "
        "for correlating logs, never for trust.",
    ),
]

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx within 15 s: delivered. Answer quickly, work later."},
    410: {
        "description": "Gone: the endpoint is disabled at once (`disabled_reason: gone`); "
        "nothing more is sent to it until you re-enable it."
    },
    "default": {
        "description": "Anything else (a 3xx is not followed), or no answer within 15 s: "
        "retried 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h later (each +/-10 %), or after "
        "`Retry-After` if that is later (at most 24 h). An endpoint that has had no success "
        "for 5 days is disabled (`disabled_reason: failing`)."
    },
}


@dataclass(frozen=True)
class Entry:
    type: str
    when: str
    data: dict[str, str | list[str]]


# The OpenAPI document's shared fictional client and homework (app.schemas.common).
_CLIENT = EXAMPLE_CLIENT_ID
_ASSIGNMENT = EXAMPLE_ASSIGNMENT_ID
_OCCURRENCE = EXAMPLE_OCCURRENCE_IDS[0]
_COMPLETION = EXAMPLE_COMPLETION_ID
_ADJUSTMENT = EXAMPLE_ADJUSTMENT_ID

CATALOGUE = (
    Entry(
        "assignment.created",
        "A clinician (or your backend) assigned homework to a client.",
        {"assignment_id": _ASSIGNMENT, "client_id": _CLIENT},
    ),
    Entry(
        "assignment.updated",
        "An assignment changed: its title, instructions, purpose, difficulty step, window, "
        "schedule or reminders, by a `PATCH` or an accepted adjustment. `changed_fields` names "
        "what changed.",
        {"assignment_id": _ASSIGNMENT, "client_id": _CLIENT, "changed_fields": ["schedule"]},
    ),
    Entry(
        "assignment.cancelled",
        "An assignment was cancelled; its future occurrences are cancelled with it.",
        {"assignment_id": _ASSIGNMENT, "client_id": _CLIENT},
    ),
    Entry(
        "assignment.completed",
        "The last occurrence of an assignment was resolved and at least one was done (or "
        "partly done). An assignment that ends with nothing done expires without an event.",
        {"assignment_id": _ASSIGNMENT, "client_id": _CLIENT},
    ),
    Entry(
        "occurrence.missed",
        "An occurrence's window closed without a completion (noticed by the worker).",
        {"assignment_id": _ASSIGNMENT, "occurrence_id": _OCCURRENCE, "client_id": _CLIENT},
    ),
    Entry(
        "completion.created",
        "A client (or a clinician, in session) recorded a completion of an occurrence: done, "
        "partly done or not done.",
        {
            "assignment_id": _ASSIGNMENT,
            "client_id": _CLIENT,
            "completion_id": _COMPLETION,
            "occurrence_id": _OCCURRENCE,
        },
    ),
    Entry(
        "completion.updated",
        "Whoever recorded a completion replaced its content (within 24 hours). "
        "`changed_fields` names what changed (`status`, `answers`, `barriers`, `barrier_note`, "
        "`helpfulness`, `effort`, `minutes_spent`, `reflection`), never the values.",
        {
            "assignment_id": _ASSIGNMENT,
            "changed_fields": ["answers", "helpfulness"],
            "client_id": _CLIENT,
            "completion_id": _COMPLETION,
            "occurrence_id": _OCCURRENCE,
        },
    ),
    Entry(
        "completion.reviewed",
        "A clinician left feedback on a completion.",
        {
            "assignment_id": _ASSIGNMENT,
            "changed_fields": ["review"],
            "client_id": _CLIENT,
            "completion_id": _COMPLETION,
            "occurrence_id": _OCCURRENCE,
        },
    ),
    Entry(
        "completion.distress_flagged",
        "A completion was flagged for distress (the `felt_overwhelmed` barrier, an answer at "
        "or over a template's distress threshold, or PHQ-9 item 9 above 0). Sent in the same "
        "transaction as the completion, so your backend hears of it at once.",
        {
            "assignment_id": _ASSIGNMENT,
            "client_id": _CLIENT,
            "completion_id": _COMPLETION,
            "occurrence_id": _OCCURRENCE,
        },
    ),
    Entry(
        "adjustment.proposed",
        "A client proposed a smaller or different step for an assignment. `changed_fields` "
        "names what it would change.",
        {
            "adjustment_id": _ADJUSTMENT,
            "assignment_id": _ASSIGNMENT,
            "changed_fields": ["difficulty_step", "rrule"],
            "client_id": _CLIENT,
        },
    ),
    Entry(
        "adjustment.resolved",
        "A clinician accepted or declined a proposed adjustment (read it for which). An "
        "accepted one is followed by `assignment.updated`.",
        {
            "adjustment_id": _ADJUSTMENT,
            "assignment_id": _ASSIGNMENT,
            "changed_fields": ["status"],
            "client_id": _CLIENT,
        },
    ),
    Entry(
        "reminder.due",
        "A reminder is due for an occurrence now: send the client a notification. Carries "
        "the homework kind and the client's local due time and zone so that you can word it "
        "without a read.",
        {
            "assignment_id": _ASSIGNMENT,
            "client_id": _CLIENT,
            "local_due_at": "2026-11-22T15:00",
            "occurrence_id": _OCCURRENCE,
            "reminder_id": EXAMPLE_REMINDER_ID,
            "template_kind": "mood_log",
            "time_zone": EXAMPLE_TIME_ZONE,
        },
    ),
    Entry(
        "client.erased",
        "A client was erased with everything that was theirs. Erase your copies too.",
        {"client_id": _CLIENT},
    ),
    Entry(
        TEST_EVENT,
        "You asked for it (`POST /v1/webhook-endpoints/{id}/test`): sent to that endpoint only, "
        "even a disabled one, so that you can check your receiver and its signature check.",
        {"endpoint_id": EXAMPLE_ENDPOINT_ID},
    ),
)


def example(entry: Entry, number: int) -> dict[str, Any]:
    return {
        "id": f"evt_01jd5c7e9g1j3m5p7r9t1v3x{number:02d}",
        "type": entry.type,
        "timestamp": "2026-11-22T19:41:00.512084Z",
        "sequence": 1040 + number,
        "data": dict(sorted(entry.data.items())),  # as on the wire: keys sorted
    }


Receiver = Callable[..., Coroutine[Any, Any, None]]


def _receiver(entry: Entry, number: int) -> Receiver:
    examples = {entry.type: {"summary": entry.type, "value": example(entry, number)}}

    async def receive(
        payload: Annotated[WebhookPayload, Body(openapi_examples=examples)],
        webhook_id: WebhookId,
        webhook_timestamp: WebhookTimestamp,
        webhook_signature: WebhookSignature,
        traceparent: Traceparent,
    ) -> None:
        """Documentation only: the vendor's receiver, not ours."""

    return receive


def register(app: FastAPI) -> None:
    """Document every event type in the app's OpenAPI `webhooks` section."""
    documented = [entry.type for entry in CATALOGUE]
    if sorted(documented) != sorted(ALL_TYPES) or set(ALL_TYPES) != set(get_args(WebhookEventType)):
        raise RuntimeError("the webhook catalogue and the event types disagree")
    for number, entry in enumerate(CATALOGUE, start=1):
        app.webhooks.add_api_route(
            entry.type,
            _receiver(entry, number),
            methods=["POST"],
            summary=entry.type,
            description=entry.when,
            operation_id=f"webhook_{entry.type.replace('.', '_')}",
            response_class=Response,
            responses=RESPONSES,
            tags=["webhooks"],
        )
