from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, created_at_column, id_column, utcnow


class Completion(Base):
    """What the client did for one occurrence: their answers, or why not, and how it went."""

    __tablename__ = "completions"
    __table_args__ = (
        UniqueConstraint("occurrence_id"),
        Index("ix_completions_tenant_id_client_id_id", "tenant_id", "client_id", "id"),
        Index("ix_completions_tenant_id_id", "tenant_id", "id"),
        Index("ix_completions_client_id_completed_at", "client_id", "completed_at"),
        # The caseload's open distress flags (migration 20261122_0008).
        Index(
            "ix_completions_open_flags",
            "client_id",
            postgresql_where=text("distress_flagged AND reviewed_at IS NULL"),
            sqlite_where=text("distress_flagged AND reviewed_at IS NULL"),
        ),
    )

    id: Mapped[str] = id_column(default=lambda: new_id("cmp"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    occurrence_id: Mapped[str] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), nullable=False
    )
    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)  # done | partial | not_done
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    barriers: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    barrier_note: Mapped[str | None] = mapped_column(Text)
    helpfulness: Mapped[int | None] = mapped_column(Integer)
    effort: Mapped[int | None] = mapped_column(Integer)
    minutes_spent: Mapped[int | None] = mapped_column(Integer)
    reflection: Mapped[str | None] = mapped_column(Text)
    # The client's own clock (apps may be offline) beside ours.
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    late: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Brought by the vendor's backend from another system: its time is theirs, not the
    # client's clock at the moment, so it is kept out of on-time rates.
    imported: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    recorded_by_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    recorded_by_id: Mapped[str] = mapped_column(String(40), nullable=False)
    in_session: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    score: Mapped[int | None] = mapped_column(Integer)
    severity: Mapped[str | None] = mapped_column(String(30))
    distress_flagged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Why: "barrier:felt_overwhelmed", "answer:/item_9". Codes and pointers, never values.
    distress_reasons: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    feedback: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(40))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}


class CompletionRevision(Base):
    """Every version of a completion, as it was: edits never overwrite what was said."""

    __tablename__ = "completion_revisions"
    __table_args__ = (UniqueConstraint("completion_id", "number"),)

    id: Mapped[str] = id_column(default=lambda: new_id("cmr"))
    completion_id: Mapped[str] = mapped_column(
        ForeignKey("completions.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    recorded_by_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    recorded_by_id: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
