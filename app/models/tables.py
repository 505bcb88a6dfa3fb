"""The mapped tables as Core `Table`s, for statements that need no ORM objects (app.core.driver)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from app.models import (
    Assignment,
    AuditEvent,
    Client,
    Completion,
    CompletionRevision,
    Event,
    IdempotencyKey,
    Occurrence,
    Reminder,
    TemplateVersion,
    Tenant,
)

ASSIGNMENTS = cast(Table, Assignment.__table__)
AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
CLIENTS = cast(Table, Client.__table__)
COMPLETIONS = cast(Table, Completion.__table__)
COMPLETION_REVISIONS = cast(Table, CompletionRevision.__table__)
EVENTS = cast(Table, Event.__table__)
IDEMPOTENCY_KEYS = cast(Table, IdempotencyKey.__table__)
OCCURRENCES = cast(Table, Occurrence.__table__)
REMINDERS = cast(Table, Reminder.__table__)
TEMPLATE_VERSIONS = cast(Table, TemplateVersion.__table__)
TENANTS = cast(Table, Tenant.__table__)
