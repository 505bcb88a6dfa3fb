from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, id_column, utcnow


# Why there is no `not_found`: app.services.audit.record_refusal_if_hidden.
class Outcome(StrEnum):
    """`allowed`: the caller was given what they asked for. `denied`: a caller of the tenant was
    refused an object of the tenant (answered 404, as for no object at all, or 403)."""

    allowed = "allowed"
    denied = "denied"


REFUSED = f"outcome <> '{Outcome.allowed.value}'"


class AuditEvent(Base):
    """Who read or changed which client's data, when, from where, with which token.

    References only, never the data. No foreign keys on purpose: the trail must outlive the
    rows it speaks of, an erased client's included.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id_id", "tenant_id", "id"),
        Index("ix_audit_events_tenant_id_client_id_id", "tenant_id", "client_id", "id"),
        Index("ix_audit_events_tenant_id_actor_id_id", "tenant_id", "actor_id", "id"),
        # Refusals only: nearly every row is an allowed read, which should not pay for an
        # index entry, while the rare denials must be found without walking the whole trail.
        Index(
            "ix_audit_events_tenant_id_outcome_id",
            "tenant_id",
            "outcome",
            "id",
            postgresql_where=text(REFUSED),
            sqlite_where=text(REFUSED),
        ),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("aud"))
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(200), nullable=False)
    client_app_id: Mapped[str] = mapped_column(String(200), nullable=False)
    token_id: Mapped[str] = mapped_column(String(100), nullable=False)
    client_id: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    outcome: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=Outcome.allowed.value
    )
    resource_type: Mapped[str] = mapped_column(String(40), nullable=False)
    resource_id: Mapped[str | None] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(45))
