"""All tables, imported here so that `Base.metadata` knows every one of them."""

from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.people import CareTeamMember, Client, Clinician
from app.models.tenant import IdentityProvider, OAuthClient, Tenant

__all__ = [
    "AuditEvent",
    "Base",
    "CareTeamMember",
    "Client",
    "Clinician",
    "IdentityProvider",
    "OAuthClient",
    "Tenant",
]
