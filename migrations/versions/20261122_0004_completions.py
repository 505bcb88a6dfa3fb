"""completions

Revision ID: 20261122_0004
Revises: 20261122_0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261122_0004"
down_revision: str | None = "20261122_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "completions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("occurrence_id", sa.String(length=40), nullable=False),
        sa.Column("assignment_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=True),
        sa.Column("barriers", sa.JSON(), nullable=False),
        sa.Column("barrier_note", sa.Text(), nullable=True),
        sa.Column("helpfulness", sa.Integer(), nullable=True),
        sa.Column("effort", sa.Integer(), nullable=True),
        sa.Column("minutes_spent", sa.Integer(), nullable=True),
        sa.Column("reflection", sa.Text(), nullable=True),
        sa.Column("completed_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("received_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("recorded_by_kind", sa.String(length=20), nullable=False),
        sa.Column("recorded_by_id", sa.String(length=40), nullable=False),
        sa.Column("in_session", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("severity", sa.String(length=30), nullable=True),
        sa.Column("distress_flagged", sa.Boolean(), nullable=False),
        sa.Column("distress_reasons", sa.JSON(), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=40), nullable=True),
        sa.Column("reviewed_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_completions_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_completions_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_completions_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_completions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_completions")),
        sa.UniqueConstraint("occurrence_id", name=op.f("uq_completions_occurrence_id")),
    )
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_completions_assignment_id"), ["assignment_id"], unique=False
        )
        batch_op.create_index(
            "ix_completions_client_id_completed_at", ["client_id", "completed_at"], unique=False
        )
        batch_op.create_index(
            "ix_completions_tenant_id_client_id_id", ["tenant_id", "client_id", "id"], unique=False
        )
        batch_op.create_index("ix_completions_tenant_id_id", ["tenant_id", "id"], unique=False)

    op.create_table(
        "completion_revisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("completion_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("recorded_by_kind", sa.String(length=20), nullable=False),
        sa.Column("recorded_by_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
            name=op.f("fk_completion_revisions_completion_id_completions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_completion_revisions")),
        sa.UniqueConstraint(
            "completion_id", "number", name=op.f("uq_completion_revisions_completion_id_number")
        ),
    )


def downgrade() -> None:
    op.drop_table("completion_revisions")
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.drop_index("ix_completions_tenant_id_id")
        batch_op.drop_index("ix_completions_tenant_id_client_id_id")
        batch_op.drop_index("ix_completions_client_id_completed_at")
        batch_op.drop_index(batch_op.f("ix_completions_assignment_id"))

    op.drop_table("completions")
