"""A browser app on another origin calls the API: headless Chromium loads a page from one
loopback port and, through `fetch`, gets a client's token and reads their homework from the
real service on another; a page from an origin we were not told about is refused.

The page does what a client's web app does, except that it holds the vendor's OAuth client
secret itself (in real life the vendor's backend exchanges it and hands the app the token).
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.chromium import chromium_fixture, run_headless  # noqa: F401 (a fixture)
from tests.homework_helpers import assign
from tests.served import free_port, running, service_env, uvicorn_command
from tests.world import World

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
BY_EXTERNAL_ID = "urn:homework:token-type:client-external-id"

PAGE = """<!doctype html>
<html><body><pre id="result">pending</pre><script>
const API = %(api)s, CLIENT_ID = %(client_id)s, SECRET = %(secret)s;
const out = {};
async function run() {
  try {
    const token = await fetch(API + "/oauth/token", {
      method: "POST",
      headers: {"Authorization": "Basic " + btoa(CLIENT_ID + ":" + SECRET)},
      body: new URLSearchParams({
        grant_type: %(grant)s, subject_token: %(subject)s, subject_token_type: %(token_type)s,
      }),
    });
    out.token_status = token.status;
    const bearer = {"Authorization": "Bearer " + (await token.json()).access_token};
    const homework = await fetch(API + "/v1/me/homework", {
      headers: {...bearer, "X-Request-ID": "from-the-browser"},
    });
    out.homework_status = homework.status;
    out.homework_request_id = homework.headers.get("X-Request-ID");
    out.homework = await homework.json();
    const assignment = await fetch(API + "/v1/assignments/" + %(assignment)s, {headers: bearer});
    out.assignment_status = assignment.status;
    out.assignment_etag = assignment.headers.get("ETag");
    out.assignment = await assignment.json();
  } catch (error) {
    out.error = String(error);
  }
  document.getElementById("result").textContent = JSON.stringify(out);
}
run();
</script></body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """One folder served by plain HTTP on two loopback ports: two origins, the same page.
    Yields the folder and the two ports."""
    folder = tmp_path / "site"
    folder.mkdir()
    servers = [
        ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
        for _ in range(2)
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield folder, servers[0].server_port, servers[1].server_port
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _result(dom: str) -> dict[str, Any]:
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    text = html.unescape(found.group(1))
    assert text != "pending", "the page's script never finished"
    result: dict[str, Any] = json.loads(text)
    return result


async def test_a_browser_app_on_an_allowed_origin_reads_homework_and_a_stranger_cannot(
    chromium: Path,
    settings: Settings,
    client: httpx.AsyncClient,
    world: World,
    static_site: tuple[Path, int, int],
    tmp_path: Path,
) -> None:
    folder, allowed_port, other_port = static_site
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT20:00")
    schedule = {"type": "recurring", "rrule": "FREQ=DAILY;COUNT=3", "start": tomorrow}
    created = await assign(client, world, world.a.clients["A1"], schedule)
    assert created.status_code == 201, created.text
    assignment_id = created.json()["id"]

    api_port = free_port()
    values = {
        "api": f"http://127.0.0.1:{api_port}",
        "client_id": world.a.client_id,
        "secret": world.a.client_secret,
        "grant": TOKEN_EXCHANGE,
        "subject": "A-clt-1",
        "token_type": BY_EXTERNAL_ID,
        "assignment": assignment_id,
    }
    (folder / "index.html").write_text(PAGE % {k: json.dumps(v) for k, v in values.items()})

    env = service_env(
        env="test",
        database_url=settings.database_url,
        cors_origins=f"http://127.0.0.1:{allowed_port}",
    )
    with running(uvicorn_command(api_port), port=api_port, cwd=tmp_path, env=env):
        allowed = _result(
            run_headless(
                chromium,
                f"http://127.0.0.1:{allowed_port}/index.html",
                "--dump-dom",
                profile=tmp_path / "profile-allowed",
            )
        )
        refused = _result(
            run_headless(
                chromium,
                f"http://127.0.0.1:{other_port}/index.html",
                "--dump-dom",
                profile=tmp_path / "profile-refused",
            )
        )

    assert "error" not in allowed, allowed
    assert allowed["token_status"] == 200
    assert allowed["homework_status"] == 200
    # Exposed headers: readable by the app's script.
    assert allowed["homework_request_id"] == "from-the-browser"
    assert allowed["assignment_status"] == 200
    assert allowed["assignment"]["id"] == assignment_id
    assert allowed["assignment_etag"], "ETag is not exposed"
    assert isinstance(allowed["homework"], dict)

    # The browser withholds every answer from a page on another origin: fetch rejects.
    assert refused == {"error": "TypeError: Failed to fetch"}
