"""All tables, imported here so that `Base.metadata` knows every one of them."""

from app.models.assignments import Adjustment, Assignment, Occurrence
from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.completions import Completion, CompletionRevision
from app.models.events import Event
from app.models.idempotency import IdempotencyKey
from app.models.people import CareTeamMember, Client, Clinician
from app.models.reminders import Reminder
from app.models.revocations import TokenRevocation
from app.models.templates import Template, TemplateVersion
from app.models.tenant import IdentityProvider, OAuthClient, Tenant
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Adjustment",
    "Assignment",
    "AuditEvent",
    "Base",
    "CareTeamMember",
    "Client",
    "Clinician",
    "Completion",
    "CompletionRevision",
    "Event",
    "IdempotencyKey",
    "IdentityProvider",
    "OAuthClient",
    "Occurrence",
    "Reminder",
    "Template",
    "TemplateVersion",
    "Tenant",
    "TokenRevocation",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
