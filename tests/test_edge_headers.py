"""The headers of the edge: security headers on every answer, and CORS for browser apps on the
origins we were told about (app/core/security_headers.py, app/core/cors.py).

The browser itself is in tests/test_cors_browser.py; here are the answers it would read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.core import data_keys
from app.core.config import Environment, Settings
from app.core.keys import generate_pem
from app.main import create_app
from tests.conftest import client_for
from tests.probe_routes import router as probe_router
from tests.world import World, get_token

APP_ORIGIN = "https://clinic-app.example"
OTHER_ORIGIN = "https://evil.example"
LOCKED_DOWN = "default-src 'none'; frame-ancestors 'none'"


def _settings(tmp_path: Path, **values: Any) -> Settings:
    """Settings on a database that is never opened: these answers need no rows."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        **{
            "env": Environment.test,
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/unused.db",
            **values,
        },
    )


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    apps: list[FastAPI] = []

    def make(**values: Any) -> httpx.AsyncClient:
        application = create_app(_settings(tmp_path, **values))
        application.include_router(probe_router)  # /v1/_probe/boom: a crash
        apps.append(application)
        return client_for(application)

    yield make
    for application in apps:
        await application.state.database.dispose()


async def test_api_answers_are_never_cached_and_never_sniffed(
    client: httpx.AsyncClient, world: World
) -> None:
    answers = [
        await client.get("/v1/me/homework", headers=world.headers("client_a1")),
        await client.get("/v1/clients", headers=world.headers("system_a")),
        await client.get("/v1/clients"),  # 401
        await client.get("/v1/nope", headers=world.headers("system_a")),  # 404
        await client.post("/oauth/token", data={"grant_type": "client_credentials"}),  # 401
        await get_token(client, world.a),
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 404, 401, 200]
    for answer in answers:
        # One, even where the route said it too (the token endpoint).
        assert answer.headers.get_list("cache-control") == ["no-store"], answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["content-security-policy"] == LOCKED_DOWN
        assert "strict-transport-security" not in answer.headers  # not in production


async def test_other_paths_keep_their_own_caching(
    edge: Callable[..., httpx.AsyncClient],
) -> None:
    async with edge() as http:
        health = await http.get("/healthz")
        asset = await http.get("/docs/assets/swagger-ui.css")
    assert "cache-control" not in health.headers
    assert health.headers["x-content-type-options"] == "nosniff"
    # The docs assets are files answered with validators, deliberately cacheable.
    assert asset.status_code == 200
    assert "etag" in asset.headers
    assert "cache-control" not in asset.headers


async def test_the_docs_page_allows_its_own_inline_script_and_nothing_else(
    edge: Callable[..., httpx.AsyncClient],
) -> None:
    async with edge() as http:
        page = await http.get("/docs")
    policy = page.headers["content-security-policy"]
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    (inline,) = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert directives["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe-inline" not in policy and "http" not in policy
    # The page proves itself in Chromium: tests/test_docs_page.py.


async def test_production_answers_demand_https(edge: Callable[..., httpx.AsyncClient]) -> None:
    production = {
        "env": Environment.production,
        "database_url": "postgresql+asyncpg://u@db.invalid/h",
        "signing_keys": json.dumps([{"alg": "ES256", "pem": generate_pem()}]),
        "data_keys": json.dumps([data_keys.generate_entry()]),
        "issuer": "https://homework.vendor.example",
    }
    async with edge(**production) as http:
        answer = await http.get("/healthz")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


def _preflight(origin: str, method: str = "POST", headers: str = "authorization") -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_is_answered(
    edge: Callable[..., httpx.AsyncClient],
) -> None:
    async with edge(cors_origins=f"{APP_ORIGIN}, https://other-app.example") as http:
        asked = "authorization, idempotency-key, if-match, content-type, x-request-id"
        answer = await http.options(
            "/v1/assignments", headers=_preflight(APP_ORIGIN, "POST", asked)
        )
        patch = await http.options(
            "/v1/clients/clt_x", headers=_preflight(APP_ORIGIN, "PATCH", "if-match")
        )
    # Was 405: no browser app could call us.
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
    allowed = {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= allowed
    allowed_headers = answer.headers["access-control-allow-headers"].lower()
    for header in asked.split(", "):
        assert header in allowed_headers
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert patch.status_code == 200


async def test_a_preflight_from_another_origin_is_refused(
    edge: Callable[..., httpx.AsyncClient],
) -> None:
    async with edge(cors_origins=APP_ORIGIN) as http:
        other = await http.options("/v1/assignments", headers=_preflight(OTHER_ORIGIN))
        header = await http.options(
            "/v1/assignments", headers=_preflight(APP_ORIGIN, headers="x-secret")
        )
        read = await http.get("/v1/me/homework", headers={"origin": OTHER_ORIGIN})
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert header.status_code == 400  # a request header we do not take
    assert "access-control-allow-origin" not in read.headers


async def test_errors_carry_cors_headers_and_expose_what_apps_read(
    edge: Callable[..., httpx.AsyncClient],
) -> None:
    limits = {"rate_limit_token_address": "1/minute"}
    async with edge(cors_origins=APP_ORIGIN, max_body_bytes=1024, **limits) as http:
        origin = {"origin": APP_ORIGIN}
        unauthorised = await http.get("/v1/me/homework", headers=origin)
        crashed = await http.get("/v1/_probe/boom", headers=origin)
        for _ in range(2):
            limited = await http.post("/oauth/token", headers=origin)
        too_large = await http.post(
            "/v1/clients",
            content=b"x" * 2048,
            headers={**origin, "content-type": "application/json"},
        )
    for answer in (unauthorised, crashed, limited, too_large):
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
        exposed = {
            h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
        }
        assert {
            "etag",
            "idempotent-replayed",
            "x-request-id",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "location",
        } <= exposed
    statuses = [a.status_code for a in (unauthorised, crashed, limited, too_large)]
    assert statuses == [401, 500, 429, 413]


def test_development_allows_the_demo_origins_and_nothing_is_allowed_elsewhere() -> None:
    def origins(**values: Any) -> list[str]:
        return Settings(_env_file=None, **values).allowed_cors_origins  # type: ignore[call-arg]

    assert origins(env=Environment.development) == [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
    ]
    assert origins(env=Environment.test) == []
    assert origins(env=Environment.development, cors_origins="") == []
    assert origins(cors_origins="https://a.example,https://b.example:8443") == [
        "https://a.example",
        "https://b.example:8443",
    ]


@pytest.mark.parametrize(
    "origin",
    ["*", "https://*.example", "https://app.example/", "https://app.example/path", "app.example"],
)
def test_only_exact_origins_are_accepted(origin: str) -> None:
    with pytest.raises(ValidationError, match="HOMEWORK_CORS_ORIGINS takes exact origins"):
        Settings(_env_file=None, cors_origins=f"https://fine.example,{origin}")  # type: ignore[call-arg]
