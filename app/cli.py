"""The `homework` command."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import uvicorn

from app.core import migrations
from app.core.config import get_settings
from app.core.logging import configure_logging

DEFAULT_OPENAPI_PATH = Path("openapi/openapi.json")


@click.group()
def main() -> None:
    """Homework API: serve it, migrate its database, and keep its contract."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations before serving.")
def serve(host: str, port: int, workers: int, no_migrate: bool) -> None:
    """Apply migrations, then serve the API with uvicorn."""
    settings = get_settings()
    configure_logging(settings.log_level)
    if not no_migrate:
        asyncio.run(migrations.upgrade(settings))
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        proxy_headers=True,
    )


@main.group()
def migrate() -> None:
    """Apply, revert or inspect database migrations."""


@migrate.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    asyncio.run(migrations.upgrade(get_settings(), revision))
    click.echo(f"upgraded to {revision}")


@migrate.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (`-1` for one step, `base` for an empty schema)."""
    asyncio.run(migrations.downgrade(get_settings(), revision))
    click.echo(f"downgraded to {revision}")


@migrate.command()
def current() -> None:
    """Print the database's current revision and the code's head."""
    revision = asyncio.run(migrations.current(get_settings()))
    click.echo(f"current: {revision or 'none'}")
    click.echo(f"head:    {migrations.head_revision()}")


@migrate.command()
@click.argument("message")
def new(message: str) -> None:
    """Autogenerate a migration named MESSAGE from the models (review it before committing)."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    existing = sorted(migrations.MIGRATIONS_DIR.glob(f"versions/{day}_*.py"))
    rev_id = f"{day}_{len(existing) + 1:04d}"
    path = asyncio.run(migrations.autogenerate(get_settings(), message, rev_id))
    click.echo(f"wrote {path}")


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if the committed document differs.")
@click.option("--output", type=click.Path(path_type=Path), default=DEFAULT_OPENAPI_PATH)
def openapi(check: bool, output: Path) -> None:
    """Write the OpenAPI document, or check that the committed one is current."""
    from app.core.openapi_document import render
    from app.main import create_app

    rendered = render(create_app())
    if check:
        committed = output.read_text() if output.exists() else ""
        if committed != rendered:
            click.echo(f"{output} is out of date: run `homework openapi`", err=True)
            sys.exit(1)
        click.echo(f"{output} is current")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered)
    click.echo(f"wrote {output}")
