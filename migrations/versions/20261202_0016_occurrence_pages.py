"""occurrence pages: a tenant's occurrences and a client's, newest first, as FHIR Task searches
page them (GET /fhir/R4/Task, with and without `patient`), like completions and assignments

Revision ID: 20261202_0016
Revises: 20261202_0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261202_0016"
down_revision: str | None = "20261202_0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_occurrences_tenant_id_client_id_id", "occurrences", ["tenant_id", "client_id", "id"]
    )
    op.create_index("ix_occurrences_tenant_id_id", "occurrences", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_occurrences_tenant_id_id", table_name="occurrences")
    op.drop_index("ix_occurrences_tenant_id_client_id_id", table_name="occurrences")
