"""Alembic, driven from our code: the CLI, `serve`, the tests and `/readyz` all come here.

Any number of processes may migrate at once (replicas of `homework serve` starting together, a
migrate job beside them): they take turns under one lock, and each finds the schema where the
one before left it. On PostgreSQL the lock is an advisory lock, on SQLite a file lock beside the
database file; both are waited for at most `migration_lock_timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import column, inspect, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

import migrations
from app.core.config import Settings
from app.core.db import create_engine

MIGRATIONS_DIR = Path(migrations.__file__).parent
log = logging.getLogger("homework.migrations")

# The PostgreSQL advisory lock that migrations (and the built-in data) run under: the first 8
# bytes of SHA-256("homework-api.migrations"), big-endian, top bit cleared so that it reads the
# same signed or not: 5707259031501643582. Advisory locks are per database, so services sharing
# a server do not wait for each other. In pg_locks it is locktype 'advisory' with classid
# 1328824793 (high half), objid 3452673854 (low half) and objsubid 1:
#   SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory'
#     AND classid = 1328824793 AND objid = 3452673854 AND objsubid = 1;
MIGRATION_LOCK_NAME = "homework-api.migrations"
MIGRATION_LOCK_KEY = 5707259031501643582
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout expires
SQLITE_LOCK_POLL_SECONDS = 0.05
VERSION_TABLE = "alembic_version"  # Alembic's default name; migrations/env.py keeps it


def migration_lock_key(name: str = MIGRATION_LOCK_NAME) -> int:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock for longer than we were willing to wait."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Dated file names: 20261122_tenants.py, revision id 20261122_0001 and so on.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


@lru_cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(settings: Settings, action: Any, *args: Any, builtin_data: bool = False) -> Any:
    """Runs an Alembic command (and then, with `builtin_data`, the built-in data's upsert) in one
    transaction, under the migration lock."""
    async with _locked_transaction(settings) as connection:
        result = None
        if action is not None:

            def run(sync_connection: Any) -> Any:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                return action(config, *args)

            result = await connection.run_sync(run)
        if builtin_data:
            await _sync_builtin_templates(connection)
        return result


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate, then bring the built-in templates (data the code owns) up to date: both in the
    same transaction, under the migration lock, so that a process waiting its turn finds the
    schema at head and the templates there, and does nothing."""
    await _run(settings, command.upgrade, revision, builtin_data=revision == "head")


async def sync_builtin_data(settings: Settings) -> None:
    """The built-in templates' upsert on its own (the tests run it after emptying the tables).
    It reads which built-ins exist and then inserts the missing ones, so two processes at once
    would both insert the same rows: it runs under the migration lock too."""
    await _run(settings, None, builtin_data=True)


async def _sync_builtin_templates(connection: AsyncConnection) -> None:
    from app.services.builtin_templates import sync_builtin_templates

    # The session joins the connection's transaction and leaves the commit to _run's.
    async with AsyncSession(bind=connection) as session:
        await sync_builtin_templates(session)


async def downgrade(settings: Settings, revision: str) -> None:
    await _run(settings, command.downgrade, revision)


@asynccontextmanager
async def _locked_transaction(settings: Settings) -> AsyncIterator[AsyncConnection]:
    """A transaction on a fresh engine, begun under the migration lock and committed before the
    lock is let go.

    PostgreSQL: `pg_advisory_xact_lock`, the first statement of the very transaction Alembic
    runs in (it runs inside our `engine.begin()` through run_sync, and its DDL is
    transactional). A transaction-level lock rather than a session one with an unlock in a
    `finally`: PostgreSQL itself releases it at COMMIT or ROLLBACK, so it is held exactly until
    the migration is visible to others (a waiter can never read the version table between our
    unlock and our commit), it cannot outlive a failed or cancelled migration on a connection
    left open, and a crash of the process releases it with its connection. The waiter reads the
    version table only after it got the lock, in a new statement, so under READ COMMITTED (the
    default; not REPEATABLE READ, whose snapshot would date from the lock's statement) it sees
    the schema the other process committed. It also holds behind PgBouncer in transaction
    mode, where a session lock could be taken and released on two different server
    connections. A migration that commits part-way
    (`op.get_context().autocommit_block()`, e.g. CREATE INDEX CONCURRENTLY) would release the
    lock early: none does, and one that must should take a session lock instead.

    SQLite: an exclusive `flock` on `<database file>.migrate.lock` (left in place: removing it
    would let two processes lock two different files), held until the transaction committed;
    none for an in-memory database, which no other process can see.
    """
    engine = create_engine(settings)
    try:
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                await _advisory_lock(connection, settings.migration_lock_timeout_seconds)
                yield connection
        else:
            async with _file_lock(settings), engine.begin() as connection:
                yield connection
    finally:
        await engine.dispose()


async def _advisory_lock(connection: AsyncConnection, wait_seconds: float) -> None:
    key = {"key": MIGRATION_LOCK_KEY}
    if await connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), key):
        return
    holder = await connection.scalar(
        text(
            "SELECT min(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = :high AND objid = :low AND objsubid = 1"
        ),
        {"high": MIGRATION_LOCK_KEY >> 32, "low": MIGRATION_LOCK_KEY & 0xFFFF_FFFF},
    )
    log.info(
        "waiting for another process's migration",
        extra={
            "lock_key": MIGRATION_LOCK_KEY,
            "holder_pid": holder,
            "timeout_seconds": wait_seconds,
        },
    )
    # lock_timeout bounds the wait (and wakes us the moment the lock is free); it is set for
    # this one statement, then put back, so that the migration's own DDL is not bounded by it.
    previous = await connection.scalar(text("SELECT current_setting('lock_timeout')"))
    await connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"),
        {"value": f"{max(1, round(wait_seconds * 1000))}ms"},
    )
    try:
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            who = f"Another process (PostgreSQL pid {holder})" if holder else "Another process"
            raise MigrationLockTimeout(
                f"{who} has held the migration lock (PostgreSQL advisory lock "
                f"{MIGRATION_LOCK_KEY}) for more than {wait_seconds:g} s, so this process did not "
                "migrate. Is a migration stuck? See pg_stat_activity for that pid; to wait "
                "longer, raise HOMEWORK_MIGRATION_LOCK_TIMEOUT_SECONDS."
            ) from None
        raise
    await connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": previous}
    )


def sqlite_lock_path(database_url: str) -> Path | None:
    """`<database file>.migrate.lock`, or None for an in-memory database."""
    url = make_url(database_url)
    database = url.database or ""
    if database.startswith("file:"):  # a URI filename (`?uri=true`)
        database, _, options = database[len("file:") :].partition("?")
        if "mode=memory" in options:
            return None
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    return Path(f"{database}.migrate.lock")


@asynccontextmanager
async def _file_lock(settings: Settings) -> AsyncIterator[None]:
    path = sqlite_lock_path(settings.database_url)
    if path is None:
        yield
        return
    timeout = settings.migration_lock_timeout_seconds
    deadline = time.monotonic() + timeout
    with path.open("a") as lock_file:
        waiting = False
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(
                        f"Another process has held the migration lock ({path}) for more than "
                        f"{timeout:g} s, so this process did not migrate. Is a migration stuck? "
                        "To wait longer, raise HOMEWORK_MIGRATION_LOCK_TIMEOUT_SECONDS."
                    ) from None
                if not waiting:
                    waiting = True
                    log.info(
                        "waiting for another process's migration",
                        extra={"lock_file": str(path), "timeout_seconds": timeout},
                    )
                await asyncio.sleep(SQLITE_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def current_revision(connection: AsyncConnection) -> str | None:
    """The schema's revision, read anew on every call (`/readyz` asks on every probe). Read
    from Alembic's version table by hand: a MigrationContext logs two INFO lines whenever one is
    made, which would be two log lines per readiness probe."""

    def read(sync_connection: Any) -> str | None:
        if not inspect(sync_connection).has_table(VERSION_TABLE):
            return None
        found = sync_connection.scalars(
            select(column("version_num")).select_from(table(VERSION_TABLE))
        ).all()
        # Our history is linear: two rows would be two heads, which no revision here makes.
        return found[0] if len(found) == 1 else None

    return await connection.run_sync(read)


async def current(settings: Settings) -> str | None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return await current_revision(connection)
    finally:
        await engine.dispose()


async def autogenerate(settings: Settings, message: str, rev_id: str) -> str:
    def revision(config: Config, message: str, rev_id: str) -> str:
        script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        assert script is not None and not isinstance(script, list)
        return str(script.path)

    result: str = await _run(settings, revision, message, rev_id)
    return result
