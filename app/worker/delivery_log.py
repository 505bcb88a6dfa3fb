"""One log line per webhook attempt, keyed by ids.

Never the URL (a receiver's URL often carries a token in its path or query), the body, the
receiver's answer or an exception's message: the delivery, endpoint and tenant ids, the attempt
number, the outcome's class and how long it took. A delivered attempt is DEBUG (there are
thousands a minute); a failed one is INFO, as it is what an operator looks for.
"""

from __future__ import annotations

import logging
import re

from app.services.webhooks.dispatch import Outcome

logger = logging.getLogger("homework.webhooks")
# Outcome.error is an exception's type name ("ClientConnectorError"), "timeout", "refused: …"
# (which quotes the refused address) or the interruption: only the first word, if it is a name.
_ERROR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def outcome_class(outcome: Outcome) -> str:
    """delivered, 3xx, 4xx, 5xx, timeout, refused, interrupted or error."""
    if outcome.status_code is not None:
        return "delivered" if outcome.delivered else f"{outcome.status_code // 100}xx"
    if outcome.interrupted:
        return "interrupted"
    if outcome.error == "timeout":
        return "timeout"
    if (outcome.error or "").startswith("refused"):
        return "refused"
    return "error"


def log_attempt(outcome: Outcome) -> None:
    delivered = outcome.delivered
    level = logging.DEBUG if delivered else logging.INFO
    if not logger.isEnabledFor(level):
        return
    claimed, kind = outcome.claimed, outcome_class(outcome)
    fields: dict[str, object] = {
        "delivery_id": claimed.delivery_id,
        "endpoint_id": claimed.endpoint_id,
        "tenant_id": claimed.tenant_id,
        "event_id": claimed.event_id,
        "attempt": claimed.attempt,
        "outcome": kind,
        "status_code": outcome.status_code,
        "duration_ms": outcome.latency_ms,
    }
    if kind == "error":
        match = _ERROR_NAME.match(outcome.error or "")
        fields["error"] = match.group() if match else "unknown"
    logger.log(
        level, "webhook attempt delivered" if delivered else "webhook attempt failed", extra=fields
    )
