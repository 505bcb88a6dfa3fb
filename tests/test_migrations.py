"""The migrations are the schema: they run both ways on both databases, and match the models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.config import Environment, Settings
from app.core.db import create_engine
from app.models import Base
from tests.conftest import _asyncpg_dsn, _postgres_admin_url


@pytest.fixture
async def empty_database(backend: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """A database of this backend with no schema at all."""
    if backend == "sqlite":
        yield _settings(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
        return
    admin = await asyncpg.connect(_asyncpg_dsn(_postgres_admin_url()), timeout=5)
    name = f"homework_migr_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _settings(make_url(_postgres_admin_url()).set(database=name).render_as_string(False))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, env=Environment.test, database_url=url)  # type: ignore[call-arg]


async def test_upgrade_downgrade_upgrade(empty_database: Settings) -> None:
    await migrations.upgrade(empty_database)
    assert await migrations.current(empty_database) == migrations.head_revision()
    await migrations.downgrade(empty_database, "base")
    assert await migrations.current(empty_database) is None
    await migrations.upgrade(empty_database)
    assert await migrations.current(empty_database) == migrations.head_revision()


async def test_models_match_the_migrations(empty_database: Settings) -> None:
    await migrations.upgrade(empty_database)
    engine = create_engine(empty_database)

    def diff(sync_connection: Any) -> list[Any]:
        context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == [], "the models and the migrations disagree: add a migration"


def test_migration_files_are_dated() -> None:
    for path in (migrations.MIGRATIONS_DIR / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert path.name[:8].isdigit() and path.name[8] == "_", path.name
