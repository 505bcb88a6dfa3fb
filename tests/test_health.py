from __future__ import annotations

import httpx
import pytest

from app.core import migrations
from app.core.config import Environment, Settings
from app.main import create_app
from tests.conftest import client_for


async def test_healthz_answers_while_the_process_lives(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_database_and_migrations(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "migration": migrations.head_revision(),
    }


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env=Environment.test,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/test",
    )
    app = create_app(settings)
    async with client_for(app) as http:
        response = await http.get("/readyz")
    await app.state.database.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:homework:problem:service-unavailable"


async def test_readyz_is_503_until_migrations_reach_head(tmp_path: pytest.TempPathFactory) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, env=Environment.test, database_url=f"sqlite+aiosqlite:///{tmp_path}/new.db"
    )
    app = create_app(settings)
    async with client_for(app) as http:
        before = await http.get("/readyz")
        await migrations.upgrade(settings)
        after = await http.get("/readyz")
    await app.state.database.dispose()
    assert before.status_code == 503
    assert "not at" in before.json()["detail"]
    assert after.status_code == 200


async def test_requests_answer_503_when_the_database_is_unreachable() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env=Environment.test,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/test",
    )
    app = create_app(settings)
    from app.core.scopes import ROLE_SCOPES, Context

    token, _ = app.state.tokens.issue(
        tenant_id="ten_x",
        kind=Context.system,
        subject="oac_x",
        client_id="oac_x",
        scopes=ROLE_SCOPES[Context.system],
        ttl_seconds=60,
    )
    async with client_for(app) as http:
        response = await http.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
    await app.state.database.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
