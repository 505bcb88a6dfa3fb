"""What a webhook carries: thin by construction.

The payload is built from the event row only: its id, type, time, per-tenant sequence, the ids
involved and the names of the fields that changed. Events never hold answers, notes or names,
so no delivery can carry them.
"""

from __future__ import annotations

import json
from typing import Any

from app.models import Event


def payload(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = dict(event.subject)
    if event.client_id is not None:
        data["client_id"] = event.client_id
    if event.changed_fields:
        data["changed_fields"] = list(event.changed_fields)
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "sequence": event.sequence,
        "data": data,
    }


def body(event: Event) -> bytes:
    return json.dumps(payload(event), separators=(",", ":"), sort_keys=True).encode()
