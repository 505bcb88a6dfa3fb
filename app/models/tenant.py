from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, created_at_column, id_column


class Tenant(Base):
    """One vendor or practice. Every other row belongs to exactly one tenant."""

    __tablename__ = "tenants"

    id: Mapped[str] = id_column(default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
