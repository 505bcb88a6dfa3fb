"""What app/core/driver.py takes from SQLAlchemy's asyncpg adapter beyond its public API.

The driver path sends statements on the asyncpg connection under the request's session. For
that to stay inside the session's transaction it reads and calls private parts of SQLAlchemy's
adapter; SQLAlchemy may change them in any release, which is why pyproject.toml pins its minor
version. If one of these tests fails after an upgrade, the driver path is no longer safe: its
statements could run before SQLAlchemy's lazy BEGIN, outside the transaction, and a locked read
(`FOR UPDATE`) would silently become an autocommit read that locks nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.config import Settings
from app.core.db import Database
from app.core.driver import Statement, param
from app.models import Tenant
from app.services import tenants
from tests.conftest import _asyncpg_dsn


def _changed(part: str, expected: str) -> str:
    return (
        f"SQLAlchemy's asyncpg adapter: {part} is not {expected}, as app/core/driver.py "
        "relies on. A SQLAlchemy upgrade changed it: driver-path statements could run outside "
        "the request's transaction, and locked reads (FOR UPDATE) silently become autocommit "
        "reads. Adapt app/core/driver.py before moving the pin in pyproject.toml."
    )


@pytest.fixture
async def database(settings: Settings, postgres_only: None) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


async def _adapter(connection: AsyncConnection) -> Any:
    return (await connection.get_raw_connection()).dbapi_connection


async def test_transaction_is_none_until_begin_is_sent(database: Database) -> None:
    async with database.engine.connect() as connection:
        adapter = await _adapter(connection)
        assert hasattr(adapter, "_transaction"), _changed("_transaction", "an attribute")
        assert adapter._transaction is None, _changed("_transaction", "None before BEGIN")
        await connection.exec_driver_sql("SELECT 1")  # SQLAlchemy's lazy BEGIN, then this
        assert adapter._transaction is not None, _changed("_transaction", "set once in BEGIN")
        await connection.rollback()


async def test_start_transaction_sends_begin(database: Database) -> None:
    async with database.engine.connect() as connection:
        adapter = await _adapter(connection)
        start = getattr(adapter, "_start_transaction", None)
        assert inspect.iscoroutinefunction(start), _changed("_start_transaction", "async")
        assert list(inspect.signature(start).parameters) == [], _changed(
            "_start_transaction", "a method without arguments"
        )
        await start()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver.is_in_transaction(), _changed("_start_transaction", "what sends BEGIN")
        assert adapter._transaction is not None, _changed("_start_transaction", "tracked")
        await connection.rollback()


async def test_autocommit_says_when_no_begin_is_due(database: Database) -> None:
    async with database.autocommit_engine.connect() as auto, database.engine.connect() as txn:
        assert (await _adapter(auto)).autocommit is True, _changed("autocommit", "True here")
        assert (await _adapter(txn)).autocommit is False, _changed("autocommit", "False here")


async def test_handle_exception_raises_the_dbapi_error(database: Database) -> None:
    async with database.engine.connect() as connection:
        adapter = await _adapter(connection)
        handle = getattr(adapter, "_handle_exception", None)
        assert callable(handle), _changed("_handle_exception", "a method")
        assert list(inspect.signature(handle).parameters) == ["error"], _changed(
            "_handle_exception", "a method of one argument, the driver's error"
        )
        dbapi = connection.dialect.loaded_dbapi
        with pytest.raises(dbapi.IntegrityError):
            handle(asyncpg.exceptions.UniqueViolationError("duplicate key"))
        assert "connection" in inspect.signature(connection.dialect.is_disconnect).parameters


def test_dbapi_error_instance_takes_what_the_driver_passes() -> None:
    parameters = inspect.signature(DBAPIError.instance).parameters
    for name in ("statement", "params", "orig", "dbapi_base_err", "hide_parameters"):
        assert name in parameters, _changed(f"DBAPIError.instance({name}=)", "a parameter")
    for name in ("connection_invalidated", "dialect"):
        assert name in parameters, _changed(f"DBAPIError.instance({name}=)", "a parameter")


_LOCK_TENANT = Statement(select(Tenant.id).where(Tenant.id == param("tenant_id")).with_for_update())


async def test_a_driver_path_read_in_a_transaction_holds_its_row_lock(
    database: Database,
) -> None:
    async with database.sessionmaker() as session, session.begin():
        issued = await tenants.create_tenant(session, "locks")
    other = await asyncpg.connect(_asyncpg_dsn(database.settings.database_url))
    try:
        async with database.sessionmaker() as session, session.begin():
            # The session's first statement, so SQLAlchemy has not sent BEGIN yet: the driver
            # path must, or this FOR UPDATE runs in autocommit and is released at once.
            assert await _LOCK_TENANT.scalars(session, tenant_id=issued.tenant_id)
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.fetch(
                    "SELECT id FROM tenants WHERE id = $1 FOR UPDATE NOWAIT", issued.tenant_id
                )
        # Released with the transaction.
        assert await other.fetch(
            "SELECT id FROM tenants WHERE id = $1 FOR UPDATE NOWAIT", issued.tenant_id
        )
    finally:
        await other.close()
