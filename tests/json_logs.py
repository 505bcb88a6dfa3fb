"""The service's own log set-up (app.core.logging.configure_logging) writing into a buffer, for
tests that read the lines as an operator's log store would get them; pytest's handlers and every
logger's level are put back afterwards."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.core.logging import QUIET_LOGGERS, configure_logging

_TOUCHED = ("uvicorn", "uvicorn.error", "uvicorn.access", *QUIET_LOGGERS)


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@contextmanager
def json_logs(level: str = "INFO") -> Iterator[Captured]:
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {
        name: (
            logging.getLogger(name).level,
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in _TOUCHED
    }
    captured = Captured()
    configure_logging(level, stream=captured.stream)
    try:
        yield captured
    finally:
        root.handlers[:], root.level = saved_root
        for name, (lvl, handlers, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(lvl)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled
