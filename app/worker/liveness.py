"""Is every loop of the worker still going round? The worker's liveness, for its probe.

Each loop says, whenever it sets off (on a batch, or into a wait), by when it will be back:
`expect(name, seconds)`. A loop that is not back within that time and `stall_seconds` more is
stalled: a batch stuck on a lock or a network call that never ends, a task that died, an event
loop that something blocks. A loop that fails quickly and tries again is not stalled (a database
outage is for readiness and alerts, not for a restart that would not help).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Liveness:
    def __init__(self, stall_seconds: float, *, clock: Callable[[], float] = time.monotonic):
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._deadlines: dict[str, float] = {}

    def expect(self, loop: str, within_seconds: float = 0.0) -> None:
        """`loop` will be back within `within_seconds` (plus the stall allowance)."""
        self._deadlines[loop] = self.clock() + within_seconds + self.stall_seconds

    def done(self, loop: str) -> None:
        """`loop` has ended as it should (the worker is stopping): no longer expected."""
        self._deadlines.pop(loop, None)

    def stalled(self) -> list[str]:
        now = self.clock()
        return sorted(loop for loop, deadline in self._deadlines.items() if now > deadline)

    @property
    def loops(self) -> list[str]:
        return sorted(self._deadlines)
