"""The `/v1` API and its FHIR R4 view (`/fhir/R4`), one router per resource. Each router carries
its full prefix and is included flat, so that a route's template (what the access log records)
is its whole path."""

from __future__ import annotations

from fastapi import APIRouter

from app.routers import (
    adherence,
    assignments,
    audit,
    clients,
    clinicians,
    completions,
    events,
    fhir,
    identity_clients,
    identity_provider,
    me,
    reminders,
    templates,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    clinicians.router,
    clients.router,
    audit.router,
    identity_provider.router,
    identity_clients.router,
    assignments.router,
    me.router,
    templates.router,
    completions.router,
    reminders.router,
    webhooks.router,
    events.router,
    adherence.router,
    fhir.router,
)
