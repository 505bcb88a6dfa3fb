"""The 503-or-500 classifier, one test per kind of failure, each with the exception the driver
really raises here (constructed only where the condition cannot be produced on this machine
in a unit test; tests/test_database_unavailable.py produces those on a restarted server)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.db_errors import database_unavailable
from app.core.driver import Statement
from tests.conftest import _asyncpg_dsn, _postgres_admin_url
from tests.own_postgres import free_port


async def _raised(engine: AsyncEngine, sql: str = "SELECT 1") -> BaseException:
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    except Exception as error:
        return error
    finally:
        await engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


@pytest.fixture
async def postgres() -> AsyncIterator[AsyncEngine]:
    try:
        probe = await asyncpg.connect(_asyncpg_dsn(_postgres_admin_url()), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    await probe.close()
    engine = create_async_engine(_postgres_admin_url())
    yield engine
    await engine.dispose()


async def test_a_refused_connection_is_unavailable() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres"
    error = await _raised(create_async_engine(url))
    assert isinstance(error, ConnectionRefusedError)
    assert database_unavailable(error)


async def test_a_host_that_does_not_resolve_is_unavailable() -> None:
    # An OSError that is not a ConnectionError (socket.gaierror): DNS down, or a renamed host.
    error = await _raised(
        create_async_engine("postgresql+asyncpg://postgres@homework-db.invalid/x")
    )
    assert isinstance(error, socket.gaierror)
    assert database_unavailable(error)


async def test_an_oserror_from_outside_the_database_is_a_bug() -> None:
    try:
        Path("/nonexistent/homework").read_text()
    except OSError as error:
        assert not database_unavailable(error)


async def test_a_pool_with_no_free_connection_is_unavailable(tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path}/pool.db", pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    try:
        async with engine.connect():
            error = await _raised(engine)
    finally:
        await engine.dispose()
    assert type(error).__name__ == "TimeoutError" and "QueuePool limit" in str(error)
    assert database_unavailable(error)


async def test_a_connection_terminated_by_the_server_is_unavailable(
    postgres: AsyncEngine,
) -> None:
    # What `pg_ctl stop -m fast` does to every open session: 57P01 admin shutdown.
    async with postgres.connect() as victim, postgres.connect() as operator:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await operator.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as first:
            await victim.execute(text("SELECT 1"))
    assert database_unavailable(first.value)


async def test_a_connection_lost_under_the_driver_path_is_unavailable(
    postgres: AsyncEngine,
) -> None:
    backend_pid = Statement(select(func.pg_backend_pid()))
    async with postgres.connect() as victim, postgres.connect() as operator:
        pid = (await backend_pid.scalars(victim))[0]
        await operator.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as lost:
            await backend_pid.scalars(victim)
    assert database_unavailable(lost.value)


async def test_a_closed_asyncpg_connection_is_unavailable(postgres: AsyncEngine) -> None:
    raw = await asyncpg.connect(_asyncpg_dsn(_postgres_admin_url()))
    await raw.close()
    with pytest.raises(asyncpg.InterfaceError) as closed:
        await raw.fetch("SELECT 1")
    assert "connection is closed" in str(closed.value)
    assert database_unavailable(closed.value)


async def test_a_cancelled_statement_is_unavailable(postgres: AsyncEngine) -> None:
    # 57014: the server stopped the statement (a timeout, an operator's pg_cancel_backend).
    async with postgres.connect() as connection:
        await connection.execute(text("SET statement_timeout = 10"))
        with pytest.raises(DBAPIError) as cancelled:
            await connection.execute(text("SELECT pg_sleep(1)"))
    assert cancelled.value.orig.sqlstate == "57014"  # type: ignore[union-attr]
    assert database_unavailable(cancelled.value)


@pytest.mark.parametrize(
    "raised",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    ],
    ids=["57P03", "53300"],
)
def test_a_server_refusing_new_sessions_is_unavailable(raised: Exception) -> None:
    # Only a server mid-restart or full says these; the fault test meets 57P03 for real. Here
    # the driver's exception goes through SQLAlchemy's own translation, as at connect time.
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    dbapi = dialect.import_dbapi()
    with pytest.raises(dbapi.Error) as translated:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, raised)
    wrapped = DBAPIError.instance(None, None, translated.value, dbapi.Error)
    assert type(wrapped) is DBAPIError  # not OperationalError: only the SQLSTATE tells
    assert database_unavailable(wrapped)


async def test_a_constraint_or_a_bad_statement_is_a_bug(postgres: AsyncEngine) -> None:
    division = await _raised(postgres, "SELECT 1/0")
    syntax = await _raised(create_async_engine(_postgres_admin_url()), "SELEC 1")
    assert not database_unavailable(division)
    assert not database_unavailable(syntax)


async def test_another_operation_in_progress_is_a_bug(postgres: AsyncEngine) -> None:
    raw = await asyncpg.connect(_asyncpg_dsn(_postgres_admin_url()))
    try:
        slow = asyncio.create_task(raw.fetch("SELECT pg_sleep(0.2)"))
        await asyncio.sleep(0.05)
        with pytest.raises(asyncpg.InterfaceError) as busy:
            await raw.fetch("SELECT 1")
        await slow
    finally:
        await raw.close()
    assert not database_unavailable(busy.value)


async def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing-volume/homework.db")
    error = await _raised(engine)
    assert getattr(getattr(error, "orig", None), "sqlite_errorname", "") == "SQLITE_CANTOPEN"
    assert database_unavailable(error)


async def test_an_sqlite_file_locked_past_the_busy_timeout_is_unavailable(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/locked.db"
    holder = create_async_engine(url)
    waiter = create_async_engine(url, connect_args={"timeout": 0.05})
    try:
        async with holder.connect() as held:
            await held.exec_driver_sql("BEGIN IMMEDIATE")
            error = await _raised(waiter, "BEGIN IMMEDIATE")
            await held.exec_driver_sql("ROLLBACK")
    finally:
        await holder.dispose()
    assert getattr(getattr(error, "orig", None), "sqlite_errorname", "") == "SQLITE_BUSY"
    assert database_unavailable(error)


async def test_an_sqlite_syntax_error_is_a_bug(tmp_path: Path) -> None:
    # sqlite3 raises OperationalError for a bad statement too: the class alone says nothing.
    error = await _raised(create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/bug.db"), "SELEC")
    assert isinstance(getattr(error, "orig", None), sqlite3.OperationalError)
    assert not database_unavailable(error)
