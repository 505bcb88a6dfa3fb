"""Structured JSON logs, one object per line.

Only what a log line is given explicitly through `extra=` is written: request bodies, answers
and notes are never passed to a logger, so they cannot reach the logs.

Plain text only: uvicorn's records carry a `color_message` (its message with ANSI colours) for
its own console formatter; it is dropped, and escape sequences are stripped from every string
written, so no terminal control code reaches a log store. The HTTP clients' own request lines
(httpx, httpcore, aiohttp) are silenced: they quote the full URL, and a webhook receiver's or an
identity provider's URL may carry a token; so is aiosqlite's DEBUG, which quotes parameters.
Our own lines name deliveries and endpoints by id.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

# Attributes every LogRecord has; anything else was passed through `extra=`.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Extras that other libraries add for their own formatters, never written.
_DROPPED_EXTRAS = frozenset({"color_message"})
# ANSI/VT100 escape sequences (CSI `ESC [ ... final`, and two-byte `ESC x`), then any ESC left.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]?")
# Warnings and errors only, whatever HOMEWORK_LOG_LEVEL says: the HTTP clients write a line per
# request with its URL; aiosqlite's DEBUG quotes every statement's parameters (client data), and
# the form parser's its fields. SQLAlchemy names a pool's logger after its class, so our
# CountedPool's is outside `sqlalchemy` (quiet by default) and would write a line per checkout
# and dispose at INFO.
QUIET_LOGGERS = (
    "app.core.db.CountedPool",
    "httpx",
    "httpcore",
    "aiohttp",
    "hpack",
    "aiosqlite",
    "multipart",
    "python_multipart",
)


def _plain(value: Any) -> Any:
    return _ESCAPES.sub("", value) if isinstance(value, str) and "\x1b" in value else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _plain(record.getMessage()),
        }
        entry.update(
            {
                k: _plain(v)
                for k, v in vars(record).items()
                if k not in _STANDARD_ATTRS and k not in _DROPPED_EXTRAS
            }
        )
        if record.exc_info:
            entry["exception"] = _plain(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """JSON lines on stdout (or `stream`) at `level` (HOMEWORK_LOG_LEVEL) for every logger."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our middleware writes the access log (with the route template, not the raw path).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
