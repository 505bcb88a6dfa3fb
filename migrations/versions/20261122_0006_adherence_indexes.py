"""adherence indexes: a client's occurrences by due time, and their adjustments by creation

Revision ID: 20261122_0006
Revises: 20261122_0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261122_0006"
down_revision: str | None = "20261122_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_occurrences_client_id_due_at", "occurrences", ["client_id", "due_at"])
    op.create_index(
        "ix_adjustments_client_id_created_at", "adjustments", ["client_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_adjustments_client_id_created_at", table_name="adjustments")
    op.drop_index("ix_occurrences_client_id_due_at", table_name="occurrences")
