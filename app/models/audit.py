from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, id_column, utcnow


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
    resource_type: Mapped[str] = mapped_column(String(40), nullable=False)
    resource_id: Mapped[str | None] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(45))
