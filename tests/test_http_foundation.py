"""The HTTP basics every route relies on: problem+json errors, request ids, body limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from tests.conftest import client_for
from tests.probe_routes import router as probe_router

PROBLEM = "application/problem+json"


@pytest.fixture
async def probe_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    application.include_router(probe_router)
    yield application
    await application.state.database.dispose()


@pytest.fixture
async def probe(probe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(probe_app) as http:
        yield http


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:homework:problem:not-found"
    assert body["status"] == 404
    assert body["instance"] == "/v1/nope"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:homework:problem:method-not-allowed"
    assert response.headers["allow"] == "GET"


async def test_malformed_json_is_a_422_problem(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/v1/_probe/echo", content=b'{"title": "x", ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:homework:problem:malformed-json"
    assert body["errors"][0]["location"] == "body"


async def test_a_body_that_is_not_utf8_is_malformed_json_too(probe: httpx.AsyncClient) -> None:
    # Found by the negative fuzzing: FastAPI answered these bytes with an undocumented bare 400.
    response = await probe.post(
        "/v1/_probe/echo",
        content=b'{"title": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:homework:problem:malformed-json"
    assert body["errors"][0]["location"] == "body"


async def test_validation_failure_names_every_bad_field(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/v1/_probe/echo", json={"title": "far too long for the limit", "nested": [1, "two"]}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "urn:homework:problem:validation-error"
    by_pointer = {e["pointer"]: e for e in body["errors"]}
    assert set(by_pointer) == {"/title", "/count", "/nested/1"}
    assert by_pointer["/count"]["code"] == "missing"
    assert by_pointer["/nested/1"]["field"] == "nested.1"
    # The offending input is never echoed back: it may be a client's answer.
    assert "far too long" not in response.text


async def test_body_over_the_limit_is_a_413_problem(probe: httpx.AsyncClient) -> None:
    payload = b'{"title": "' + b"x" * 70_000 + b'", "count": 1}'
    response = await probe.post(
        "/v1/_probe/echo", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:homework:problem:payload-too-large"


async def test_streamed_body_over_the_limit_is_refused_without_content_length(
    probe: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'", "count": 1}'

    response = await probe.post(
        "/v1/_probe/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:homework:problem:payload-too-large"


async def test_body_limit_is_configurable(make_settings) -> None:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(max_body_bytes=2048))
    application.include_router(probe_router)
    async with client_for(application) as http:
        small = await http.post("/v1/_probe/echo", json={"title": "ok", "count": 1})
        big = await http.post(
            "/v1/_probe/echo", json={"title": "ok", "count": 1, "nested": [1] * 1500}
        )
    await application.state.database.dispose()
    assert small.status_code == 200
    assert big.status_code == 413


async def test_unexpected_exception_is_a_500_that_leaks_nothing(
    probe: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await probe.get("/v1/_probe/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:homework:problem:internal-error"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


async def test_request_id_is_echoed_when_safe_and_generated_otherwise(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/healthz", headers={"x-request-id": "vendor-req-42"})
    assert echoed.headers["x-request-id"] == "vendor-req-42"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    hostile = await client.get("/healthz", headers={"x-request-id": "a b<script>"})
    assert hostile.headers["x-request-id"] != "a b<script>"


async def test_session_commits_before_the_response(probe: httpx.AsyncClient) -> None:
    created = await probe.post("/v1/_probe/tenants", json={"name": "Acme"})
    assert created.status_code == 201
    count = await probe.get("/v1/_probe/tenants/count")
    assert count.json() == {"count": 1}


async def test_a_failed_commit_is_never_answered_as_success(probe: httpx.AsyncClient) -> None:
    # Were the commit to run after the response was sent, the caller would see 201 here.
    response = await probe.post("/v1/_probe/tenants", json={"name": "Acme", "fail_at_commit": True})
    assert response.status_code >= 400
    assert response.headers["content-type"] == PROBLEM
    count = await probe.get("/v1/_probe/tenants/count")
    assert count.json() == {"count": 0}


async def test_an_error_rolls_back_what_was_flushed(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/v1/_probe/tenants", json={"name": "Acme", "fail_after_flush": True}
    )
    assert response.status_code == 409
    count = await probe.get("/v1/_probe/tenants/count")
    assert count.json() == {"count": 0}


async def test_text_the_database_cannot_store_is_a_422(client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/v1/clinicians",
        json={"external_id": "dr-nul", "display_name": "Dr \u0000 Null"},
        headers=world.headers("system_a"),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/display_name"


async def test_a_nul_in_a_path_or_query_is_never_a_500(client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
    for url, params in (
        ("/v1/clients/clt_%00x", None),
        ("/v1/clients", {"external_id": "a\x00b"}),
        # A statement sent straight to asyncpg (app.core.driver) fails as SQLAlchemy's would.
        ("/v1/assignments", {"client_id": "a\x00b"}),
    ):
        response = await client.get(url, params=params, headers=world.headers("system_a"))
        assert response.status_code in (200, 404, 422), (url, response.status_code)
        if response.status_code == 200:  # SQLite stores a NUL; nothing matches it
            assert response.json()["data"] == []
