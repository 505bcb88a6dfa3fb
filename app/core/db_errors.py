"""Which database failures mean "out of reach for now, retry" (503) rather than "a bug" (500).

One function, `database_unavailable`, used by the error handlers for every path a statement
can take: the ORM session, the hand-written driver path (app.core.driver), the commit, and the
pool's own connect. It looks at the exception and at what it was raised from (SQLAlchemy's
`.orig`, `raise … from`), because the same outage reaches us in several shapes:

- PostgreSQL said so, by SQLSTATE: class 08 (connection exception: refused, lost, reset; asyncpg's
  `ConnectionDoesNotExistError` is 08003), class 57 (operator intervention: 57P01 admin shutdown
  during `pg_ctl stop -m fast`, 57P03 "the database system is shutting down / starting up / in
  recovery", 57014 a statement cancelled by an operator or a timeout) and class 53 (insufficient
  resources: 53300 too many connections, a full disk). asyncpg's adapter in SQLAlchemy maps
  these to the bare DBAPI `Error`, not to `OperationalError`, so the class is read from the code.
- SQLAlchemy saw the connection die under a statement (`connection_invalidated`), or its pool
  had no connection to give within `pool_timeout`.
- The socket never opened: the driver raises the OS error itself (refused, reset, a connect
  timeout, an unresolvable host, "Multiple exceptions" when every address fails). Those count
  only when raised inside the database libraries, so that an OSError from a bug elsewhere still
  answers 500.
- SQLite: the file cannot be opened, read or written (CANTOPEN, IOERR, READONLY, FULL), or it
  stayed locked by another writer past `busy_timeout` (BUSY, LOCKED). A lock held beyond five
  seconds is contention, not a bug: the caller's right move is the same as for a PostgreSQL
  pool timeout, to retry later, so it is a 503 too. A malformed or corrupt file is not here: no
  retry can help, it is an incident (500, logged).

Anything else (a constraint, a syntax error, an asyncpg "another operation is in progress") is
ours to fix and stays a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER_SECONDS = 5
"""What a 503 tells the caller to wait: a PostgreSQL fast restart takes one to three seconds."""

UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
UNAVAILABLE_SQLITE_ERRORS = frozenset(
    {
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_CANTOPEN",
        "SQLITE_IOERR",
        "SQLITE_READONLY",
        "SQLITE_FULL",
    }
)
_DATABASE_LIBRARIES = ("asyncpg", "aiosqlite", "sqlite3", "sqlalchemy")
_CLOSED_CONNECTION = "connection is closed"


def database_unavailable(exc: BaseException) -> bool:
    """True if `exc` means the database cannot serve this request now, and a retry may succeed."""
    return any(_says_unavailable(error) for error in _causes(exc))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was explicitly raised from (not what it merely happened
    during: an error in an `except` block is its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _says_unavailable(error: BaseException) -> bool:
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
        return True
    sqlite_error = getattr(error, "sqlite_errorname", None)
    if isinstance(sqlite_error, str):
        # An extended code starts with its primary one: SQLITE_IOERR_SHORT_READ is an IOERR.
        primary = "_".join(sqlite_error.split("_", 2)[:2])
        return primary in UNAVAILABLE_SQLITE_ERRORS
    if isinstance(error, OSError):
        return _raised_by_a_database_library(error)
    # asyncpg's InterfaceError for a connection already closed when the statement was sent.
    return type(error).__module__.startswith("asyncpg") and _CLOSED_CONNECTION in str(error)


def _raised_by_a_database_library(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if module.split(".", 1)[0] in _DATABASE_LIBRARIES:
            return True
        traceback = traceback.tb_next
    return False
