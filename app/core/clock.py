"""The current time, as a dependency: tests move it to a DST change instead of waiting for one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    """A clock that stands still until it is moved."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


async def current_time(request: Request) -> datetime:
    clock: Clock = request.app.state.clock
    return clock.now()


NowDep = Annotated[datetime, Depends(current_time)]
