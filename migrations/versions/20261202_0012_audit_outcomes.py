"""audit outcomes: each audit event says whether the access was allowed or denied, and the
denials (rare) have a partial index of their own for the audit search's outcome filter

Revision ID: 20261202_0012
Revises: 20261202_0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0012"
down_revision: str | None = "20261202_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from the model: a migration keeps the schema it made.
REFUSED = sa.text("outcome <> 'allowed'")


def upgrade() -> None:
    # Every row recorded so far was an allowed access: only those were recorded.
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outcome", sa.String(length=20), server_default="allowed", nullable=False)
        )
    op.create_index(
        "ix_audit_events_tenant_id_outcome_id",
        "audit_events",
        ["tenant_id", "outcome", "id"],
        postgresql_where=REFUSED,
        sqlite_where=REFUSED,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_tenant_id_outcome_id", table_name="audit_events")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("outcome")
