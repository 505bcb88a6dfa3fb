from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, created_at_column, id_column


class RevokedKind(StrEnum):
    """What a revocation names, and so which tokens it refuses."""

    token = "token"  # one token, by its jti
    oauth_client = "oauth_client"  # every token an OAuth client obtained, by its id
    subject = "subject"  # every token bound to one person, as "client:clt_…"/"clinician:cln_…"


class TokenRevocation(Base):
    """Tokens that must stop working before they expire. Every API process reloads the rows
    still in force every few seconds (app.core.revocations), so a revocation reaches them all
    through the database, not through any one process's memory."""

    __tablename__ = "token_revocations"

    id: Mapped[str] = id_column(default=lambda: new_id("rvk"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    value: Mapped[str] = mapped_column(String(200), nullable=False)
    revoked_at: Mapped[datetime] = created_at_column()
    # When every token the row could match has expired anyway: from then on it is dead weight,
    # left out of the reload (the index) and deleted by the next revocation.
    forget_after: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
