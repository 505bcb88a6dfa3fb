"""A circuit breaker per webhook endpoint, for receivers that keep timing out.

Closed: the endpoint gets its usual slots. After `threshold` attempts in a row that got no
answer (a timeout or a failed connection) it opens for `cooldown`: none of its deliveries is
claimed, so they wait, untouched and unattempted, on their schedule while its slots serve
nobody else's slow receiver. Then it is half-open: one delivery is sent as a probe. An answer
(any status: the receiver is up) closes it; another timeout opens it again for twice as long,
up to `max_cooldown`. An endpoint that answers with errors is not cut off: it answers quickly,
holds no slot for long, and the retry schedule paces it.

The state is the worker process's own: each worker learns on its own and forgets on restart,
and the database holds nothing that a lost worker would leave stuck.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.services.webhooks.dispatch import Outcome

logger = logging.getLogger("homework.webhooks")


@dataclass
class _State:
    failures: int = 0
    open_until: datetime | None = None
    cooldown: timedelta | None = None


class Breakers:
    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: timedelta = timedelta(seconds=30),
        max_cooldown: timedelta = timedelta(minutes=10),
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._states: dict[str, _State] = {}

    def slots(self, endpoint_id: str, usual: int, now: datetime) -> int:
        """How many attempts the endpoint may have in flight now: `usual`, 1 (a probe), or 0."""
        state = self._states.get(endpoint_id)
        if state is None or state.open_until is None:
            return usual
        if now < state.open_until:
            return 0
        return 1

    def is_open(self, endpoint_id: str, now: datetime) -> bool:
        return self.slots(endpoint_id, 1, now) == 0

    def observe(self, outcome: Outcome, now: datetime) -> None:
        endpoint_id = outcome.claimed.endpoint_id
        if outcome.interrupted:
            return
        if not outcome.unanswered:
            self._states.pop(endpoint_id, None)
            return
        state = self._states.setdefault(endpoint_id, _State())
        state.failures += 1
        if state.open_until is not None:
            # A probe, started once the cooldown was over, failed: open again, for longer. An
            # attempt that was already in flight when the circuit opened tells nothing new.
            if outcome.attempted_at >= state.open_until:
                state.cooldown = min(2 * (state.cooldown or self.cooldown), self.max_cooldown)
                state.open_until = now + state.cooldown
                _opened(outcome, state)
        elif state.failures >= self.threshold:
            state.cooldown = self.cooldown
            state.open_until = now + state.cooldown
            _opened(outcome, state)

    def is_probing(self, endpoint_id: str) -> bool:
        """The circuit was open and its cooldown is over: the next attempt is a probe."""
        state = self._states.get(endpoint_id)
        return state is not None and state.open_until is not None

    def counts(self, now: datetime) -> dict[str, int]:
        """How many endpoints' circuits are open, and how many half-open (probing)."""
        open_ = sum(1 for s in self._states.values() if s.open_until and now < s.open_until)
        probing = sum(1 for s in self._states.values() if s.open_until and now >= s.open_until)
        return {"open": open_, "half_open": probing}

    def open_endpoints(self, now: datetime) -> list[str]:
        return [e for e, s in self._states.items() if s.open_until and now < s.open_until]


def _opened(outcome: Outcome, state: _State) -> None:
    logger.info(
        "webhook circuit opened",
        extra={
            "endpoint_id": outcome.claimed.endpoint_id,
            "tenant_id": outcome.claimed.tenant_id,
            "failures": state.failures,
            "cooldown_seconds": state.cooldown.total_seconds() if state.cooldown else None,
        },
    )
