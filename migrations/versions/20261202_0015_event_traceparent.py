"""event traceparent: the trace context of the request or worker batch that recorded an event,
so its webhook deliveries carry a traceparent that continues that trace

Revision ID: 20261202_0015
Revises: 20261202_0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0015"
down_revision: str | None = "20261202_0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: events recorded before this migration (and by any path without a
    # trace) have none, and their deliveries start a trace of their own. A plain ADD COLUMN on
    # PostgreSQL (no rewrite, no long lock).
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
