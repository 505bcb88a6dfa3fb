from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, UTCDateTime, created_at_column, id_column


class Tenant(Base):
    """One vendor or practice. Every other row belongs to exactly one tenant."""

    __tablename__ = "tenants"

    id: Mapped[str] = id_column(default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The last sequence number given to one of this tenant's events.
    event_sequence: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = created_at_column()


class OAuthClient(Base):
    """A vendor backend's credentials. Secrets are kept only as hashes."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = id_column(default=lambda: new_id("oac"))
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # Space-separated scopes: system ones for its own tokens, clinician and client ones for
    # the user tokens it may mint by token exchange.
    allowed_scopes: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A rotation keeps the replaced secret valid until previous_secret_expires_at, so that the
    # vendor can roll the new one out to every backend instance without an outage.
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdentityProvider(Base):
    """A tenant's own identity provider, whose access tokens we accept directly."""

    __tablename__ = "identity_providers"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(500), nullable=False, unique=True)
    jwks_url: Mapped[str] = mapped_column(String(2000), nullable=False)
    audience: Mapped[str] = mapped_column(String(500), nullable=False)
    kind_claim: Mapped[str] = mapped_column(String(100), nullable=False)
    external_id_claim: Mapped[str] = mapped_column(String(100), nullable=False)
    # The longest `exp - iat` this tenant's tokens may claim; null: HOMEWORK_IDP_MAX_TOKEN_...
    max_token_lifetime_seconds: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = created_at_column()
