from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, id_column, utcnow


class Event(Base):
    """The outbox: an immutable record of something that happened, written in the same
    transaction as the change. Ids and field names only: never answers, notes or names."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant_id_id", "tenant_id", "id"),
        Index("ix_events_tenant_id_type_id", "tenant_id", "type", "id"),
        # The fan-out's search for events not yet turned into deliveries.
        Index("ix_events_fanned_out_at_id", "fanned_out_at", "id"),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("evt"))
    tenant_id: Mapped[str] = mapped_column(String(40), nullable=False)
    type: Mapped[str] = mapped_column(String(60), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    client_id: Mapped[str | None] = mapped_column(String(40))
    # The ids involved, by name: {"assignment_id": "asg_…", "occurrence_id": "occ_…"}.
    subject: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    changed_fields: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # Set when the event is turned into deliveries: a per-tenant number, gapless in that order.
    sequence: Mapped[int | None] = mapped_column(Integer)
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Only for events meant for one endpoint (a test event).
    endpoint_id: Mapped[str | None] = mapped_column(String(40))
    # The W3C traceparent of the request (or worker batch) that recorded it: its deliveries,
    # sent later, continue that trace (app.core.trace_context). Ids only.
    traceparent: Mapped[str | None] = mapped_column(String(55))
