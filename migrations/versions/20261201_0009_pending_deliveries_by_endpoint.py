"""pending deliveries by endpoint: the dispatcher's fair claim takes a few per endpoint, and
its look for the next retry reads pending deliveries only

Revision ID: 20261201_0009
Revises: 20261122_0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201_0009"
down_revision: str | None = "20261122_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    # Every delivery ever made was in (state, next_attempt_at); only pending ones are read.
    op.drop_index("ix_webhook_deliveries_state_next_attempt_at", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_pending_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    # Partial: the deliveries still to send, a sliver of every delivery ever made; one range
    # per endpoint, in due order, is what each claim reads.
    op.create_index(
        "ix_webhook_deliveries_pending_endpoint",
        "webhook_deliveries",
        # id last: the claim's ORDER BY (next_attempt_at, id) is then the index's own order.
        ["endpoint_id", "next_attempt_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending_endpoint", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_pending_due", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_state_next_attempt_at",
        "webhook_deliveries",
        ["state", "next_attempt_at"],
    )
