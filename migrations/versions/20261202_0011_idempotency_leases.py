"""idempotency leases: an in-flight Idempotency-Key is held by a lease its request renews, so a
key left by a process that died is taken over seconds later instead of two minutes

Revision ID: 20261202_0011
Revises: 20261202_0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261202_0011"
down_revision: str | None = "20261202_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a key already done needs no lease, and one in flight from before this revision
    # (no lease) counts as abandoned, which after a deploy's restart it is.
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_expires_at", app.models.base.UTCDateTime(timezone=True))
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
