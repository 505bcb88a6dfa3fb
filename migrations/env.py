"""Alembic environment. Migrations run on a connection handed in by app.core.migrations
(`homework migrate`, `homework serve`, the tests), so one code path serves both databases."""

from __future__ import annotations

from alembic import context

from app.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise SystemExit("Run migrations with `homework migrate`, not the bare alembic command.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
