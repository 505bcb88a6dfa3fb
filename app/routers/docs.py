"""The API reference page at `/docs`: Swagger UI, served by this service alone.

Clinics run closed networks, so the page loads nothing from a CDN. Its JavaScript, CSS and icon
come from the `fastapi-offline` package (Swagger UI 5: the document is OpenAPI 3.1, which older
Swagger UI cannot render) and are served from `/docs/assets`. The page reads the same
`/openapi.json` that FastAPI already serves. Neither is part of the OpenAPI document.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
# The package's own copy of the Swagger UI distribution (swagger-ui-bundle.js, swagger-ui.css,
# favicon.png). Only the files are used: the package's FastAPI subclass is not.
ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # Swagger UI's default validator is validator.swagger.io: its badge (drawn by the standalone
    # layout, not by the base layout used here) loads an image from there that names our
    # document's address whenever the page is not on localhost. Off, whatever the layout.
    "validatorUrl": None,
}

# A <script> element with no attributes: the inline one (the bundle is <script src=...>).
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH, response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    # Behind a proxy that serves us under a prefix, every URL on the page carries it.
    root = str(request.scope.get("root_path", "")).rstrip("/")
    assets = f"{root}{ASSETS_PATH}"
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} reference",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
    page.headers["Content-Security-Policy"] = content_security_policy(bytes(page.body))
    return page


def content_security_policy(page: bytes) -> str:
    """What the page may load: its own scripts, styles, images and API calls, plus the one
    inline script that starts Swagger UI, allowed by its hash (it names the document's URL,
    which depends on the prefix we are served under, so the hash is taken from the page).
    Swagger UI's style sheet draws its icons as `data:` images. Nothing else, from anywhere."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def install(app: FastAPI) -> None:
    """The page and its assets. The assets are a static mount (not routes of the API): they are
    files, answered with ETag and Last-Modified, and unknown names are a 404 problem."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIRECTORY), name="docs-assets")
    app.include_router(router)
