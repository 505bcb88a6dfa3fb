"""The database: one async engine per process, and one transaction per request.

The request's session commits after the route returns and before the response is sent, and
rolls back on any error (app.core.routing.TransactionRoute). Services `flush()`, never commit.
On PostgreSQL a GET runs without BEGIN/COMMIT: its statements are reads and at most one audit
INSERT, each atomic on its own, so the transaction would only cost two round trips.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool

from app.core import metrics, trace_context, wakeups
from app.core.config import Settings

POOL_REPORT_SECONDS = 1.0
POOL_REPORT = "pool-metrics"  # the reporting task's name


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    options: dict[str, Any] = {"echo": settings.db_echo}
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **options)
        _tune_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        poolclass=CountedPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        **options,
    )
    _ping_idle_connections(engine, settings.db_ping_idle_after_seconds)
    return engine


class CountedPool(AsyncAdaptedQueuePool):
    """The pool asyncpg engines use by default, counting who waits for a connection: the one
    figure that says the pool, not the database, is the bottleneck. Counted only when every
    connection is out, so a request that finds one free pays nothing. `_do_get` is the method a
    Pool subclass implements to hand out a connection (it blocks while none is free)."""

    def __init__(self, creator: Any, pool_size: int = 5, max_overflow: int = 10, **kw: Any):
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kw)
        self.most = pool_size + max_overflow if max_overflow >= 0 else None

    def _do_get(self) -> Any:
        if self.most is None or self.checkedout() < self.most:
            return super()._do_get()
        metrics.DB_POOL_WAITING.inc()
        try:
            return super()._do_get()
        finally:
            metrics.DB_POOL_WAITING.dec()


async def report_pool_forever(database: Database, stop: asyncio.Event) -> None:
    """Connections in use, read from the pool every second rather than counted at every
    checkout (two writes per request, and with --workers N each one is a file's)."""
    checkedout = getattr(database.engine.sync_engine.pool, "checkedout", None)
    while checkedout is not None and not stop.is_set():
        metrics.DB_POOL_IN_USE.set(checkedout())
        await wakeups.first_of(stop, timeout=POOL_REPORT_SECONDS)


def _ping_idle_connections(engine: AsyncEngine, idle_after: float) -> None:
    """SQLAlchemy's `pool_pre_ping` pings on every checkout, which on asyncpg is `BEGIN; ";";
    ROLLBACK`: three round trips per request. Only a connection that sat idle can have been cut
    while nobody watched; one that dies under load fails its statement (503), and the
    disconnect invalidates it."""

    @event.listens_for(engine.sync_engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle_after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError() from error


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with "database is locked" where busy_timeout cannot help.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        tracing = trace_context.active()
        if tracing is not None:  # off: no listener at all on the engine
            tracing.instrument_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Statements that commit one by one. SQLite keeps its transactions: its `begin` hook
        # takes the write lock, and a write outside one would be no faster there.
        self.autocommit_engine = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.read_sessionmaker = async_sessionmaker(self.autocommit_engine, expire_on_commit=False)

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_database(request: Request) -> Database:
    # async, though it awaits nothing: a plain def would be sent to the thread pool on every
    # request.
    database: Database = request.app.state.database
    return database


REQUEST_SESSION_KEY = "homework.session"
READ_METHODS = frozenset({"GET", "HEAD"})


def open_request_session(request: Request) -> AsyncSession:
    """The request's session (app.core.routing.TransactionRoute opens, commits and closes it);
    a GET's runs in autocommit."""
    database: Database = request.app.state.database
    sessions = (
        database.read_sessionmaker if request.method in READ_METHODS else database.sessionmaker
    )
    session = sessions()
    request.scope[REQUEST_SESSION_KEY] = session
    return session


async def _request_session(request: Request) -> AsyncSession:
    try:
        session: AsyncSession = request.scope[REQUEST_SESSION_KEY]
    except KeyError:
        raise RuntimeError(
            "SessionDep is for routes of app.core.routing.TransactionRoute"
        ) from None
    return session


SessionDep = Annotated[AsyncSession, Depends(_request_session)]
