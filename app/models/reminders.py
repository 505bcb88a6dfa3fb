from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, created_at_column, id_column, utcnow


class Reminder(Base):
    """A nudge for one occurrence, due at an exact instant computed in the client's time."""

    __tablename__ = "reminders"
    __table_args__ = (
        # The worker's claim: due reminders in due order.
        Index("ix_reminders_state_due_at", "state", "due_at"),
        Index("ix_reminders_tenant_id_client_id_due_at", "tenant_id", "client_id", "due_at"),
        Index("ix_reminders_occurrence_id", "occurrence_id"),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("rem"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), nullable=False
    )
    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), nullable=False
    )
    occurrence_id: Mapped[str] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), nullable=False
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # The wall-clock time on the client's clock, "YYYY-MM-DDTHH:MM", and its zone.
    local_due: Mapped[str] = mapped_column(String(16), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    # scheduled | sent | skipped | snoozed | dismissed | cancelled
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    # Why it was moved, skipped or cancelled: quiet_hours, muted, daily_cap, resolved, ...
    reason: Mapped[str | None] = mapped_column(String(40))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}
