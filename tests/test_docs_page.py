"""The API reference page at /docs works on a closed network.

Clinics run networks with no way out, so the page must load every script, style sheet and
image from this service. The first test reads the page's HTML; the second serves the real
service and renders the page in headless Chromium whose resolver knows only this service's
name, as a browser inside a clinic would.

The third signs in as a client would: a client token from token exchange, pasted into the
Authorize dialog's bearer field, then "Try it out" on `GET /v1/me/homework`, which must show
the 200 it got.

`HOMEWORK_UPDATE_SCREENSHOT=1` also copies the rendered page to docs/docs-page.png.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Environment, Settings
from app.main import create_app
from tests.chromium import chromium_fixture, devtools, run_headless  # noqa: F401 (a fixture)
from tests.served import free_port, homework, running, service_env, uvicorn_command

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "docs-page.png"
# Read at import: the autouse `_no_env_leak` fixture removes HOMEWORK_* variables before a test.
UPDATE_SCREENSHOT = os.environ.get("HOMEWORK_UPDATE_SCREENSHOT") == "1"
# A clinic's own host name, not localhost, which Swagger UI treats specially (it never asks its
# online validator about a document on localhost or 127.0.0.1).
CLINIC_HOST = "homework.clinic.test"

EXPECTED_CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _Loads(HTMLParser):
    """The URLs a page makes the browser load: scripts, style sheets, icons, images, frames.
    Links (`<a href>`) are not loads and are left out."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio") and found.get("src"):
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")


def loaded_urls(page: str) -> list[str]:
    parser = _Loads()
    parser.feed(page)
    return parser.urls


def assert_same_host(urls: list[str], host: str) -> None:
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme in ("", "http", "https"), url
        assert parts.netloc in ("", host), f"{url} is loaded from another host"
        assert "cdn" not in url.lower(), url


@pytest.fixture
async def docs_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """An app on a database that is never opened: the page and its assets need no rows."""
    settings = Settings(
        _env_file=None,
        env=Environment.test,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/unused.db",
    )
    application = create_app(settings)
    yield application
    await application.state.database.dispose()


async def test_the_page_loads_everything_from_this_service(docs_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=docs_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "http://" not in page.text and "https://" not in page.text
        assert "cdn" not in page.text.lower()
        # Swagger UI's default validator is validator.swagger.io (see app/routers/docs.py).
        assert '"validatorUrl": null' in page.text
        assert "url: '/openapi.json'" in page.text

        urls = loaded_urls(page.text)
        assert sorted(urlsplit(url).path.rsplit("/", 1)[-1] for url in urls) == [
            "favicon.png",
            "swagger-ui-bundle.js",
            "swagger-ui.css",
        ]
        assert_same_host(urls, "testserver")
        for url in urls:
            asset = await http.get(urljoin(str(page.url), url))
            assert asset.status_code == 200, url
            suffix = Path(urlsplit(url).path).suffix
            assert asset.headers["content-type"].startswith(EXPECTED_CONTENT_TYPES[suffix]), url
            assert len(asset.content) > 1000, url
        bundle = await http.get("/docs/assets/swagger-ui-bundle.js")
        # OpenAPI 3.1 needs Swagger UI 5.
        assert 'PACKAGE_VERSION:"5.' in bundle.text

        document = await http.get("/openapi.json")
        assert document.status_code == 200
        assert document.json()["openapi"].startswith("3.1")
        assert not any(path.startswith("/docs") for path in document.json()["paths"])

        missing = await http.get("/docs/assets/nope.js")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"


@dataclass(frozen=True)
class Served:
    port: int
    env: dict[str, str]
    cwd: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The real service, as `homework serve` runs it: migrated SQLite, uvicorn, the factory,
    on 127.0.0.1; with the environment and directory for `homework` commands on its database."""
    env = service_env(env="test", database_url=f"sqlite+aiosqlite:///{tmp_path}/docs.db")
    homework("migrate", "upgrade", cwd=tmp_path, env=env)
    port = free_port()
    with running(uvicorn_command(port), port=port, cwd=tmp_path, env=env):
        yield Served(port, env, tmp_path)


def test_the_page_renders_every_operation_with_no_way_out(
    chromium: Path, served: Served, tmp_path: Path
) -> None:
    port = served.port
    url = f"http://{CLINIC_HOST}:{port}/docs"
    only_us = (f"MAP {CLINIC_HOST} 127.0.0.1",)
    console: list[str] = []
    dom = run_headless(
        chromium,
        url,
        "--dump-dom",
        profile=tmp_path / "profile-dom",
        host_rules=only_us,
        console=console,
    )
    text = html.unescape(dom)
    # The page works under its Content-Security-Policy: nothing it needs was blocked.
    assert [line for line in console if "Content Security Policy" in line] == []
    page = httpx.get(f"http://127.0.0.1:{port}/docs", trust_env=False)
    assert "script-src 'self' 'sha256-" in page.headers["content-security-policy"]

    assert "Failed to load API definition" not in text
    assert "Homework API" in text
    assert text.count('class="opblock ') >= 40
    assert 'data-path="/v1/assignments"' in dom
    assert 'data-path="/v1/clients/{client_id}/care-team"' in dom
    document = httpx.get(f"http://127.0.0.1:{port}/openapi.json", trust_env=False).json()
    summaries = {
        operation["summary"]
        for operations in document["paths"].values()
        for operation in operations.values()
    }
    assert "Assign homework to a client" in summaries
    assert sorted(s for s in summaries if s not in text) == [], "operations not rendered"
    # What the rendered page loads (Swagger UI adds its own elements) stays on this host.
    assert_same_host(loaded_urls(dom), f"{CLINIC_HOST}:{port}")

    shot = tmp_path / "docs-page.png"
    run_headless(
        chromium,
        url,
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        profile=tmp_path / "profile-shot",
        host_rules=only_us,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a blank page is a few kilobytes
    if UPDATE_SCREENSHOT:
        shutil.copyfile(shot, SCREENSHOT)


def _client_token(served: Served) -> str:
    """What a vendor's backend does for its client app: a tenant, a client, and that client's
    token by token exchange (RFC 8693), naming the client by the vendor's own id."""
    issued = json.loads(
        homework("tenants", "create", "Docs Clinic", cwd=served.cwd, env=served.env)
    )
    base = f"http://127.0.0.1:{served.port}"
    basic = (issued["client_id"], issued["client_secret"])
    with httpx.Client(base_url=base, trust_env=False, auth=basic) as oauth:
        system = oauth.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "system/clients.c"},
        )
        assert system.status_code == 200, system.text
        created = httpx.post(
            f"{base}/v1/clients",
            json={"external_id": "patient-docs", "time_zone": "America/New_York"},
            headers={
                "Authorization": f"Bearer {system.json()['access_token']}",
                "Idempotency-Key": str(uuid.uuid4()),
            },
            trust_env=False,
        )
        assert created.status_code == 201, created.text
        exchanged = oauth.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": "patient-docs",
                "subject_token_type": "urn:homework:token-type:client-external-id",
                "scope": "client/assignments.r",
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        token: str = exchanged.json()["access_token"]
        return token


# The Authorize dialog's section for a scheme, found by the scheme's name in its heading.
_SCHEME_SECTION = (
    "[...document.querySelectorAll('.auth-container')]"
    ".find(c => (c.querySelector('h4')?.textContent || '').trim().startsWith({name}))"
)
_OPERATION = "#operations-me-get_my_homework"
_ANSWER = f"{_OPERATION} .live-responses-table tr.response"


def test_a_client_token_pasted_into_authorize_tries_my_homework(
    chromium: Path, served: Served, tmp_path: Path
) -> None:
    token = _client_token(served)
    url = f"http://{CLINIC_HOST}:{served.port}/docs"
    bearer = _SCHEME_SECTION.format(name=json.dumps("bearer"))
    with devtools(
        chromium,
        url,
        profile=tmp_path / "profile-authorize",
        host_rules=(f"MAP {CLINIC_HOST} 127.0.0.1",),
    ) as page:
        page.click(".auth-wrapper button.authorize")
        page.wait_for(f"{bearer}?.querySelector('input')")
        # The dialog offers the client-credentials flow with system scopes only (a client or
        # clinician scope there could never be granted), and the bearer field beside it.
        labels = page.evaluate(
            "[...document.querySelectorAll('.auth-container .scopes label')]"
            ".map(e => e.textContent)"
        )
        offered = [label for label in labels if re.match(r"(system|clinician|client)/", label)]
        assert len(offered) > 40 and all(label.startswith("system/") for label in offered)
        page.evaluate(f"{bearer}.querySelector('input').focus()")
        page.send("Input.insertText", text=token)
        page.evaluate(f"{bearer}.querySelector('button[type=submit]').click()")
        page.wait_for(
            f"[...{bearer}.querySelectorAll('button')].some(b => b.textContent.trim() === 'Logout')"
        )
        page.click(".dialog-ux button.btn-done")

        page.click(f"{_OPERATION} .opblock-summary-control")
        page.click(f"{_OPERATION} button.try-out__btn")
        page.click(f"{_OPERATION} button.execute")
        status = page.wait_for(
            f"document.querySelector('{_ANSWER} .response-col_status')?.textContent.trim()"
        )
        body = page.evaluate(
            f"document.querySelector('{_ANSWER} .response-col_description')?.textContent"
        )
        curl = page.evaluate(f"document.querySelector('{_OPERATION} .curl-command')?.textContent")
    assert status == "200", body
    assert '"time_zone": "America/New_York"' in body and '"items": []' in body
    # Sent to the page's own origin, with the pasted token (Swagger UI shows the request made).
    assert f"Authorization: Bearer {token}" in curl
    assert f"http://{CLINIC_HOST}:{served.port}/v1/me/homework" in curl
    assert [line for line in page.console if "Content Security Policy" in line] == []
