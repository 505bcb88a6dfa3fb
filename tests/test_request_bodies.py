"""Bodies FastAPI would misread are the README's 422s: UTF-8 only, and numbers too long to
convert named by pointer (app/core/json_body.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from tests.conftest import client_for
from tests.probe_routes import router as probe_router
from tests.world import World

PROBLEM = "application/problem+json"
MALFORMED = "urn:homework:problem:malformed-json"
INVALID = "urn:homework:problem:validation-error"
HUGE = "9" * 5000  # over Python's 4,300-digit conversion limit


@pytest.fixture
async def probe(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)
    application.include_router(probe_router)
    async with client_for(application) as http:
        yield http
    await application.state.database.dispose()


def _json(charset: str | None = None) -> dict[str, str]:
    suffix = f"; charset={charset}" if charset else ""
    return {"content-type": "application/json" + suffix}


def _assert_problem(response: httpx.Response, status: int, problem_type: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict = response.json()  # type: ignore[type-arg]
    assert body["type"] == problem_type
    return body


async def test_a_huge_number_is_a_422_naming_its_field(
    client: httpx.AsyncClient, world: World
) -> None:
    # Was an undocumented `400 bad-request` naming nothing.
    response = await client.post(
        "/v1/clients",
        content=f'{{"external_id": {HUGE}, "time_zone": "Europe/Paris"}}'.encode(),
        headers={**world.headers("system_a"), **_json()},
    )
    body = _assert_problem(response, 422, INVALID)
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("/external_id", "int_parsing_size")
    ]
    assert HUGE[:50] not in response.text  # the input is never echoed


async def test_every_huge_number_is_named_wherever_it_is(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/v1/_probe/echo",
        content=f'{{"title": "x", "count": -{HUGE}, "nested": [1, {HUGE}]}}'.encode(),
        headers=_json(),
    )
    body = _assert_problem(response, 422, INVALID)
    assert [e["pointer"] for e in body["errors"]] == ["/count", "/nested/1"]
    # Under the limit, a long number is an ordinary one.
    long = "9" * 4000
    response = await probe.post(
        "/v1/_probe/echo", content=f'{{"title": "x", "count": {long}}}'.encode(), headers=_json()
    )
    assert response.status_code == 200
    assert response.json()["count"] == int(long)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
async def test_a_body_in_another_encoding_is_malformed(
    probe: httpx.AsyncClient, encoding: str
) -> None:
    # json.loads(bytes) guesses UTF-16 and UTF-32: FastAPI accepted these, the README says 422.
    content = '{"title": "x", "count": 1}'.encode(encoding)
    response = await probe.post("/v1/_probe/echo", content=content, headers=_json())
    _assert_problem(response, 422, MALFORMED)


async def test_a_declared_charset_other_than_utf8_is_malformed(probe: httpx.AsyncClient) -> None:
    content = b'{"title": "x", "count": 1}'  # ASCII: the same bytes in UTF-8
    response = await probe.post("/v1/_probe/echo", content=content, headers=_json("utf-16"))
    body = _assert_problem(response, 422, MALFORMED)
    assert body["errors"][0]["pointer"] == ""
    for fine in ("utf-8", "UTF-8", '"utf-8"'):
        response = await probe.post("/v1/_probe/echo", content=content, headers=_json(fine))
        assert response.status_code == 200, fine
    # A UTF-8 byte order mark is still ignored, as RFC 8259 allows and FastAPI always did.
    with_bom = b'\xef\xbb\xbf{"title": "caf\xc3\xa9", "count": 1}'
    response = await probe.post("/v1/_probe/echo", content=with_bom, headers=_json())
    assert response.json()["title"] == "café"


async def test_arrays_nested_thousands_deep_are_malformed(probe: httpx.AsyncClient) -> None:
    # json.loads raises RecursionError: FastAPI answered it with an undocumented 400.
    depth = 30_000
    content = b'{"title": "x", "count": 1, "nested": ' + b"[" * depth + b"]" * depth + b"}"
    response = await probe.post("/v1/_probe/echo", content=content, headers=_json())
    _assert_problem(response, 422, MALFORMED)
