from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, created_at_column, id_column, utcnow


class Assignment(Base):
    """A template given to one client, made personal, with its schedule."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_tenant_id_client_id_id", "tenant_id", "client_id", "id"),
        Index("ix_assignments_tenant_id_id", "tenant_id", "id"),
        Index("ix_assignments_status_materialized_until", "status", "materialized_until"),
        # The worker's search for assignments whose series has ended.
        Index("ix_assignments_status_series_complete", "status", "series_complete"),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("asg"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), nullable=False
    )
    clinician_id: Mapped[str | None] = mapped_column(
        ForeignKey("clinicians.id", ondelete="SET NULL")
    )
    template_id: Mapped[str] = mapped_column(ForeignKey("templates.id"), nullable=False)
    template_version_id: Mapped[str] = mapped_column(
        ForeignKey("template_versions.id"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    instructions: Mapped[str] = mapped_column(Text, nullable=False)
    purpose: Mapped[str | None] = mapped_column(Text)
    difficulty_step: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    # once | recurring | before_next_session
    schedule_type: Mapped[str] = mapped_column(String(30), nullable=False)
    rrule: Mapped[str | None] = mapped_column(String(512))
    # The series' first local wall-clock time ("2026-11-23T20:00"), kept local so that the
    # series follows the client when their time zone changes.
    start_local: Mapped[str | None] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opens_before_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    grace_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    # Occurrences exist up to here; the worker extends open-ended series.
    materialized_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    series_complete: Mapped[bool] = mapped_column(nullable=False, default=False)
    # The ordinal of the current series' first occurrence: a changed rule starts a new series
    # after the occurrences already kept, so that their numbers never collide.
    ordinal_base: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reminder_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}


class Occurrence(Base):
    """One due instance of an assignment, with the window in which it can be done."""

    __tablename__ = "occurrences"
    __table_args__ = (
        UniqueConstraint("assignment_id", "ordinal"),
        Index("ix_occurrences_client_id_closes_at", "client_id", "closes_at"),
        Index("ix_occurrences_status_opens_at", "status", "opens_at"),
        Index("ix_occurrences_status_closes_at", "status", "closes_at"),
        # Adherence and session summaries: a client's occurrences by due time.
        Index("ix_occurrences_client_id_due_at", "client_id", "due_at"),
        # FHIR Task searches: a tenant's, or a client's, newest first (migration 20261202_0016).
        Index("ix_occurrences_tenant_id_client_id_id", "tenant_id", "client_id", "id"),
        Index("ix_occurrences_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("occ"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), nullable=False
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), nullable=False
    )
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # The wall-clock due time in the zone it was computed in, for display and reminders.
    local_due: Mapped[str] = mapped_column(String(16), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class Adjustment(Base):
    """A client's proposal of a smaller or different step, and the clinician's answer."""

    __tablename__ = "adjustments"
    __table_args__ = (
        Index("ix_adjustments_assignment_id_id", "assignment_id", "id"),
        Index("ix_adjustments_client_id_created_at", "client_id", "created_at"),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("adj"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), nullable=False
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), nullable=False
    )
    note: Mapped[str | None] = mapped_column(Text)
    # The changes proposed: any of title, instructions, difficulty_step, rrule.
    proposed: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="proposed")
    resolved_by: Mapped[str | None] = mapped_column(String(40))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
