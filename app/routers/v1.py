"""The `/v1` API. Each capability includes its router here."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
