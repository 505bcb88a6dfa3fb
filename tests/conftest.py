"""The suite runs on SQLite and on PostgreSQL.

Every test that asks for `settings`, `app` or `client` runs once per backend. The schema comes
from the migrations, applied once per backend to a database made for this run (a temporary
SQLite file, a fresh PostgreSQL database that is dropped at the end); each test starts from
empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.config import RATE_LIMIT_NAMES, Environment, Settings
from app.core.db import Database
from app.main import create_app
from app.models import Base
from tests.fhir_validation import validate_fhir_response
from tests.webhook_receiver import Receiver, serve_receiver

DEFAULT_TEST_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
_skipped_postgres: list[str] = []


def _postgres_admin_url() -> str:
    return os.environ.get("HOMEWORK_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    only = os.environ.get("HOMEWORK_TEST_BACKENDS")
    if only and name not in only.split(","):
        pytest.skip(f"backend {name} not selected by HOMEWORK_TEST_BACKENDS")
    return name


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if backend == "sqlite":
        path = Path(tmp_path_factory.mktemp("sqlite")) / "homework.db"
        url = f"sqlite+aiosqlite:///{path}"
        await migrations.upgrade(_settings_for(url))
        yield url
        return

    admin_url = _postgres_admin_url()
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL unreachable at {admin_url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the PostgreSQL run may not be skipped)")
        _skipped_postgres.append(message)
        pytest.skip(message)
    name = f"homework_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(False)
    try:
        await migrations.upgrade(_settings_for(url))
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# The suite sends many requests as one caller within a minute: its limits are raised here,
# explicitly, not switched off (every request is still counted, and carries the headers);
# tests/test_rate_limits.py sets its own.
SUITE_RATE_LIMITS = {f"rate_limit_{name}": "100000/minute" for name in RATE_LIMIT_NAMES}


def _settings_for(url: str, **overrides: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        env=Environment.test,
        database_url=url,
        **{**SUITE_RATE_LIMITS, **overrides},  # type: ignore[arg-type]
    )


@pytest.fixture
async def settings(database_url: str) -> AsyncIterator[Settings]:
    yield _settings_for(database_url)
    await _empty_all_tables(database_url)


async def _empty_all_tables(url: str) -> None:
    database = Database(_settings_for(url))
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    try:
        async with database.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    await connection.execute(text(f"DELETE FROM {table}"))
    finally:
        await database.dispose()
    await migrations.sync_builtin_data(_settings_for(url))


@pytest.fixture
def make_settings(database_url: str, settings: Settings):  # type: ignore[no-untyped-def]
    """Settings for this backend with some values changed."""

    def make(**overrides: object) -> Settings:
        return _settings_for(database_url, **overrides)

    return make


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.database.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    # Every FHIR resource a test is sent must be valid R4, whatever the test looks at.
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        event_hooks={"response": [validate_fhir_response]},
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (tests.webhook_receiver), for as long as the test runs."""
    with serve_receiver() as running:
        yield running


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL behaviour")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            node = getattr(report, "nodeid", "")
            backend = next(
                (b for b in ("sqlite", "postgresql") if f"[{b}" in node or f"-{b}" in node), None
            )
            if backend and getattr(report, "when", "call") in ("call", "setup"):
                per = counts.setdefault(backend, {})
                per[outcome] = per.get(outcome, 0) + 1
    for backend, per in sorted(counts.items()):
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(per.items()))
        terminalreporter.write_line(f"database tests on {backend}: {summary}")
    if _skipped_postgres:
        terminalreporter.write_sep("!", "POSTGRESQL RUN SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_skipped_postgres[0], red=True)
        terminalreporter.write_line("Start PostgreSQL or set HOMEWORK_TEST_POSTGRES_URL.", red=True)


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests build their own Settings; a developer's HOMEWORK_* variables must not leak in."""
    for key in list(os.environ):
        if key.startswith("HOMEWORK_") and key != "HOMEWORK_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    yield


@pytest.fixture
async def world(app: FastAPI):  # type: ignore[no-untyped-def]
    from tests.world import build_world

    return await build_world(app)
