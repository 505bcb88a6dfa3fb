"""idp token lifetime: the longest exp - iat a tenant's identity provider may issue, per tenant

Revision ID: 20261202_0014
Revises: 20261202_0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0014"
down_revision: str | None = "20261202_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_token_lifetime_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.drop_column("max_token_lifetime_seconds")
