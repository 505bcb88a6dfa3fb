"""The committed OpenAPI document: rendered the same way every time so that diffs are real."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI


def render(app: FastAPI) -> str:
    document: dict[str, Any] = app.openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
