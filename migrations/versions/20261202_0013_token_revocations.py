"""token revocations and client secret rotation: tokens refused before they expire (RFC 7009,
erased clients, deleted clinicians, revoked OAuth clients), and an OAuth client's previous
secret kept valid for an overlap after a rotation

Revision ID: 20261202_0013
Revises: 20261202_0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261202_0013"
down_revision: str | None = "20261202_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_revocations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("forget_after", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_token_revocations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_revocations")),
    )
    with op.batch_alter_table("token_revocations", schema=None) as batch_op:
        # Every API process reads the rows still in force every few seconds.
        batch_op.create_index("ix_token_revocations_forget_after", ["forget_after"], unique=False)
        batch_op.create_index("ix_token_revocations_tenant_id", ["tenant_id"], unique=False)
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("secret_rotated_at", app.models.base.UTCDateTime(timezone=True))
        )
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=64)))
        batch_op.add_column(
            sa.Column("previous_secret_expires_at", app.models.base.UTCDateTime(timezone=True))
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_hash")
        batch_op.drop_column("secret_rotated_at")
    with op.batch_alter_table("token_revocations", schema=None) as batch_op:
        batch_op.drop_index("ix_token_revocations_tenant_id")
        batch_op.drop_index("ix_token_revocations_forget_after")
    op.drop_table("token_revocations")
