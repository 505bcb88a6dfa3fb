"""How the service uses its PostgreSQL connections: reads without a transaction, writes in one,
and pooled connections that the database dropped replaced before anyone notices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.core.config import Settings
from app.core.driver import Statement, param
from app.main import create_app
from app.models.tables import TENANTS
from tests.conftest import client_for
from tests.world import World, build_world

pytestmark = pytest.mark.usefixtures("postgres_only")


@contextmanager
def autocommit_modes(app: FastAPI) -> Iterator[list[bool]]:
    """Whether each statement the app sends runs outside a transaction (autocommit)."""
    modes: list[bool] = []
    engine = app.state.database.engine.sync_engine

    def record(conn: Any, *_args: Any) -> None:
        modes.append(bool(conn.connection.dbapi_connection.autocommit))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield modes
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_read_sends_no_begin_and_a_write_runs_in_one_transaction(
    app: FastAPI, world: World
) -> None:
    async with client_for(app) as http:
        with autocommit_modes(app) as read:
            response = await http.get("/v1/clients", headers=world.headers("system_a"))
            assert response.status_code == 200
        with autocommit_modes(app) as write:
            response = await http.post(
                "/v1/clients",
                json={
                    "external_id": "ext-sam",
                    "display_name": "Sam",
                    "time_zone": "Europe/London",
                },
                headers={**world.headers("system_a"), "Idempotency-Key": "k-1"},
            )
            assert response.status_code == 201, response.text

    assert read and all(read), "a GET's statements (reads and the audit row) commit one by one"
    # The Idempotency-Key claim commits on its own, so a concurrent retry sees it at once; the
    # change and the stored response share one transaction.
    assert write[0] is True
    assert len(write) > 2 and not any(write[1:])


async def _terminate_other_backends(settings: Settings) -> int:
    # From a connection of our own, outside the app's pool.
    engine = create_async_engine(settings.database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def _drop_pooled_connections_then_read(
    settings: Settings, path: str = "/v1/clients"
) -> list[int]:
    app = create_app(settings)
    try:
        world = await build_world(app)
        async with client_for(app) as http:
            first = await http.get(path, headers=world.headers("system_a"))
            assert first.status_code == 200
            # The database restarts, say: every pooled connection is cut while idle.
            assert await _terminate_other_backends(settings) >= 1
            return [
                (await http.get(path, headers=world.headers("system_a"))).status_code
                for _ in range(2)
            ]
    finally:
        await app.state.database.dispose()


async def test_a_connection_dropped_while_idle_is_replaced_before_use(make_settings: Any) -> None:
    statuses = await _drop_pooled_connections_then_read(make_settings(db_ping_idle_after_seconds=0))
    assert statuses == [200, 200]


async def test_without_the_idle_ping_one_request_sees_the_drop_and_the_pool_recovers(
    make_settings: Any,
) -> None:
    # A connection in steady use is not pinged (three round trips per request); if it is cut,
    # its request answers 503 (retryable), and the disconnect renews the whole pool.
    statuses = await _drop_pooled_connections_then_read(
        make_settings(db_ping_idle_after_seconds=3600)
    )
    assert statuses == [503, 200]


async def test_a_dropped_connection_under_a_driver_statement_is_a_503_too(
    make_settings: Any,
) -> None:
    # The assignment list runs on asyncpg directly (app.core.driver): its lost connection must
    # be recognised and invalidated as SQLAlchemy's own would be.
    statuses = await _drop_pooled_connections_then_read(
        make_settings(db_ping_idle_after_seconds=3600), "/v1/assignments"
    )
    assert statuses == [503, 200]


async def test_a_driver_statement_of_a_write_runs_inside_its_transaction(
    settings: Settings, app: FastAPI, world: World
) -> None:
    # SQLAlchemy's adapter sends BEGIN just before its own first statement; a statement sent
    # straight to asyncpg first (the completion POST's locked read) must still be inside it.
    lock = Statement(
        select(TENANTS.c.id).where(TENANTS.c.id == param("tenant_id")).with_for_update()
    )
    other = create_async_engine(settings.database_url, poolclass=NullPool)
    try:
        async with app.state.database.sessionmaker() as session:
            assert await lock.scalars(session, tenant_id=world.a.id) == [world.a.id]
            async with other.connect() as connection:
                with pytest.raises(DBAPIError, match="could not obtain lock"):
                    await connection.execute(
                        text("SELECT id FROM tenants WHERE id = :id FOR UPDATE NOWAIT"),
                        {"id": world.a.id},
                    )
            await session.rollback()
    finally:
        await other.dispose()
