"""Alembic, driven from our code: the CLI, `serve`, the tests and `/readyz` all come here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

import migrations
from app.core.config import Settings
from app.core.db import create_engine

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Dated file names: 20261122_tenants.py, revision id 20261122_0001 and so on.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


@lru_cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(settings: Settings, action: Any, *args: Any) -> Any:
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:

            def run(sync_connection: Any) -> Any:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                return action(config, *args)

            return await connection.run_sync(run)
    finally:
        await engine.dispose()


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate, then bring the built-in templates (data the code owns) up to date."""
    await _run(settings, command.upgrade, revision)
    if revision == "head":
        await sync_builtin_data(settings)


async def sync_builtin_data(settings: Settings) -> None:
    from app.services.builtin_templates import sync_builtin_templates

    engine = create_engine(settings)
    try:
        async with AsyncSession(engine) as session, session.begin():
            await sync_builtin_templates(session)
    finally:
        await engine.dispose()


async def downgrade(settings: Settings, revision: str) -> None:
    await _run(settings, command.downgrade, revision)


async def current_revision(connection: AsyncConnection) -> str | None:
    def read(sync_connection: Any) -> str | None:
        return MigrationContext.configure(sync_connection).get_current_revision()

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
