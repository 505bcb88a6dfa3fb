"""The `/v1` API. Each capability includes its router here."""

from __future__ import annotations

from fastapi import APIRouter

from app.routers import audit, clients, clinicians, identity_provider

router = APIRouter(prefix="/v1")
router.include_router(clinicians.router)
router.include_router(clients.router)
router.include_router(audit.router)
router.include_router(identity_provider.router)
