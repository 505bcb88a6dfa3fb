from __future__ import annotations

import json
import logging

import httpx
import pytest

from app.core.logging import JsonFormatter


async def test_access_log_is_structured_and_carries_no_body(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    await client.post(
        "/v1/nope", json={"answer": "I felt worthless today"}, headers={"x-request-id": "r-1"}
    )
    records = [r for r in caplog.records if r.name == "homework.access"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["method"] == "POST"
    assert line["status"] == 404
    assert line["request_id"] == "r-1"
    assert isinstance(line["duration_ms"], float)
    assert "worthless" not in caplog.text


async def test_access_log_uses_the_route_template(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    await client.get("/healthz")
    (record,) = [r for r in caplog.records if r.name == "homework.access"]
    assert json.loads(JsonFormatter().format(record))["path"] == "/healthz"


async def test_access_log_records_the_full_template_of_versioned_routes(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homework.access")
    await client.get("/v1/clients/clt_secretish")
    (record,) = [r for r in caplog.records if r.name == "homework.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["path"] == "/v1/clients/{client_id}"
    # Our own lines only: the test's HTTP client logs its request when an earlier test in the
    # process has turned httpx's logger on.
    ours = [r for r in caplog.records if r.name.startswith("homework")]
    assert not [r for r in ours if "clt_secretish" in JsonFormatter().format(r)]
