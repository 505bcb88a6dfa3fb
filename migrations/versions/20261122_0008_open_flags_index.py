"""open flags index: a client's distress flags not yet reviewed, for the caseload

Revision ID: 20261122_0008
Revises: 20261122_0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261122_0008"
down_revision: str | None = "20261122_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_FLAG = sa.text("distress_flagged AND reviewed_at IS NULL")


def upgrade() -> None:
    # Partial: a handful of rows among every completion, probed once per client.
    op.create_index(
        "ix_completions_open_flags",
        "completions",
        ["client_id"],
        postgresql_where=OPEN_FLAG,
        sqlite_where=OPEN_FLAG,
    )


def downgrade() -> None:
    op.drop_index("ix_completions_open_flags", table_name="completions")
