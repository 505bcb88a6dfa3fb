"""The `homework` command."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn
import uvloop
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import metrics, migrations
from app.core.config import get_settings
from app.core.db import Database
from app.core.errors import Problem
from app.core.logging import configure_logging
from app.core.scopes import ScopeError, ScopeSet
from app.core.security import Principal
from app.models import OAuthClient, Tenant
from app.schemas.identity_providers import IdentityProviderIn
from app.schemas.oauth_clients import OAuthClientOut, RotationIn
from app.services import identity_providers
from app.services import tenants as tenant_service

T = TypeVar("T")

DEFAULT_OPENAPI_PATH = Path("openapi/openapi.json")
WORKER_START_SECONDS = 60


@click.group()
def main() -> None:
    """Homework API: serve it, migrate its database, and keep its contract."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--no-migrate",
    is_flag=True,
    help="Do not apply migrations before serving (a `homework migrate upgrade` job does; "
    "/readyz answers 503 until the schema is at head).",
)
@click.option("--demo", is_flag=True, help="Seed a demo tenant on first start; print curl lines.")
def serve(host: str, port: int, workers: int, no_migrate: bool, demo: bool) -> None:
    """Apply migrations, then serve the API with uvicorn."""
    settings = get_settings()
    configure_logging(settings.log_level)
    if not no_migrate:
        _migrate(migrations.upgrade(settings))
    if demo:
        _ensure_demo(f"http://{host}:{port}")
    if settings.metrics_enabled:
        if workers > 1:
            metrics.share_between_processes()
        if settings.metrics_port is not None:
            metrics.serve_on_port(host, settings.metrics_port)
    uvicorn.run(
        "app.main:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        proxy_headers=True,
        # The edge limits, chosen in Settings and documented in the README ("Timeouts and
        # limits"); the request body's deadline is BodyTimeoutMiddleware's.
        http=settings.server_http,
        timeout_keep_alive=settings.server_keep_alive_seconds,
        h11_max_incomplete_event_size=settings.server_max_header_bytes,
        limit_concurrency=settings.server_limit_concurrency or None,
        backlog=settings.server_backlog,
        forwarded_allow_ips=settings.server_forwarded_allow_ips,
        # With --workers N, uvicorn's supervisor kills a child that has not answered its ping
        # within this long, and a child answers only once it has imported this command's whole
        # module tree: on a busy 2-core machine that took over uvicorn's 5 s, and every child
        # was killed and restarted in a loop, so `--workers 2` never served at all.
        timeout_worker_healthcheck=WORKER_START_SECONDS,
    )


def _ensure_demo(base_url: str) -> None:
    """Seed the demo once: again only if its tenant is gone (another database, or emptied)."""
    from app.services import demo as demo_data

    async def ensure() -> dict[str, Any]:
        database = Database(get_settings())
        try:
            now = datetime.now(UTC)
            seeded, _ = await demo_data.ensure(database, demo_data.DEMO_FILE, now)
            return seeded
        finally:
            await database.dispose()

    click.echo(demo_data.instructions(asyncio.run(ensure()), base_url))


@main.group()
def migrate() -> None:
    """Apply, revert or inspect database migrations."""


@migrate.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head).

    Safe to run beside other upgrades and starting `serve` replicas: they take turns under a
    lock (HOMEWORK_MIGRATION_LOCK_TIMEOUT_SECONDS bounds the wait). This is the job an
    orchestrator runs before starting `serve --no-migrate` replicas.
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    _migrate(migrations.upgrade(settings, revision))
    click.echo(f"upgraded to {revision}")


@migrate.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (`-1` for one step, `base` for an empty schema)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    _migrate(migrations.downgrade(settings, revision))
    click.echo(f"downgraded to {revision}")


def _migrate(run: Coroutine[Any, Any, None]) -> None:
    """Runs a migration; a wait for another process's that timed out is an error message and
    exit status 1, not a traceback."""
    try:
        asyncio.run(run)
    except migrations.MigrationLockTimeout as error:
        raise click.ClickException(str(error)) from None


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


@main.group()
def tenants() -> None:
    """Tenants and their OAuth clients: create, list, rotate, revoke."""


def _run_in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(get_settings())
        try:
            async with database.sessionmaker() as session, session.begin():
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(run())


@tenants.command("create")
@click.argument("name")
def tenants_create(name: str) -> None:
    """Create tenant NAME and its first OAuth client; prints the secret once."""
    issued = _run_in_session(lambda session: tenant_service.create_tenant(session, name))
    click.echo(json.dumps(dataclasses.asdict(issued), indent=2))


@tenants.command("list")
def tenants_list() -> None:
    """List tenants with their number of OAuth clients."""
    rows = _run_in_session(tenant_service.list_tenants)
    for tenant, clients in rows:
        click.echo(f"{tenant.id}  {tenant.name}  ({clients} OAuth clients)")


@tenants.command("add-client")
@click.argument("tenant_id")
@click.option("--name", required=True, help="What this client is, for people reading the list.")
@click.option("--scope", "scope", required=True, help="Space-separated scopes it may hold.")
def tenants_add_client(tenant_id: str, name: str, scope: str) -> None:
    """Add an OAuth client to TENANT_ID with its own allowed scopes; prints the secret once."""
    try:
        scopes = ScopeSet.parse(scope)
    except ScopeError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from exc

    async def add(session: AsyncSession) -> tenant_service.IssuedCredentials:
        if await session.get(Tenant, tenant_id) is None:
            raise click.BadParameter(f"no tenant {tenant_id}", param_hint="TENANT_ID")
        return await tenant_service.create_oauth_client(session, tenant_id, name, scopes)

    click.echo(json.dumps(dataclasses.asdict(_run_in_session(add)), indent=2))


@tenants.command("trust-idp")
@click.argument("tenant_id")
@click.option("--issuer", required=True)
@click.option("--jwks-url", required=True)
@click.option("--audience", required=True)
@click.option("--kind-claim", default="homework_kind", show_default=True)
@click.option("--external-id-claim", default="sub", show_default=True)
def tenants_trust_idp(tenant_id: str, **options: str) -> None:
    """Accept access tokens from TENANT_ID's own identity provider."""
    try:
        body = IdentityProviderIn(**options)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc

    async def save(session: AsyncSession) -> None:
        if await session.get(Tenant, tenant_id) is None:
            raise click.BadParameter(f"no tenant {tenant_id}", param_hint="TENANT_ID")
        try:
            await identity_providers.save(session, get_settings(), tenant_id, body)
        except Problem as exc:
            raise click.UsageError(exc.errors[0].message if exc.errors else str(exc)) from exc

    _run_in_session(save)
    click.echo(f"tenant {tenant_id} now trusts {body.issuer}")


def _tenant_of(session: AsyncSession, client_id: str) -> Awaitable[str | None]:
    return session.scalar(select(OAuthClient.tenant_id).where(OAuthClient.id == client_id))


def _on_client(
    client_id: str, act: Callable[[AsyncSession, Principal, OAuthClient], Awaitable[T]]
) -> T:
    """Run `act` on one OAuth client as the operator of its tenant (audited as such)."""

    async def run(session: AsyncSession) -> T:
        tenant_id = await _tenant_of(session, client_id)
        if tenant_id is None:
            raise click.BadParameter(f"no OAuth client {client_id}", param_hint="CLIENT_ID")
        operator = tenant_service.operator(tenant_id)
        return await act(
            session, operator, await tenant_service.find_oauth_client(session, operator, client_id)
        )

    return _run_in_session(run)


def _echo_client(client: OAuthClient, **extra: str) -> None:
    click.echo(json.dumps({**OAuthClientOut.of(client).model_dump(mode="json"), **extra}, indent=2))


@tenants.command("clients")
@click.argument("tenant_id")
def tenants_clients(tenant_id: str) -> None:
    """List TENANT_ID's OAuth clients, revoked ones too (never a secret)."""

    async def listed(session: AsyncSession) -> list[OAuthClient]:
        operator = tenant_service.operator(tenant_id)
        return await tenant_service.list_oauth_clients(session, operator)

    for client in _run_in_session(listed):
        _echo_client(client)


@tenants.command("show-client")
@click.argument("client_id")
def tenants_show_client(client_id: str) -> None:
    """Describe OAuth client CLIENT_ID."""

    async def show(session: AsyncSession, operator: Principal, client: OAuthClient) -> OAuthClient:
        return await tenant_service.get_oauth_client(session, operator, client.id)

    _echo_client(_on_client(client_id, show))


@tenants.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--old-secret-expires-in",
    default=RotationIn.model_fields["old_secret_expires_in"].default,
    show_default=True,
    type=click.IntRange(0, 7 * 86400),
    help="Seconds the replaced secret keeps working; 0 ends it at once (a leak).",
)
def tenants_rotate_secret(client_id: str, old_secret_expires_in: int) -> None:
    """Give CLIENT_ID a new secret, printed once; the old one works for the overlap."""

    async def rotate(
        session: AsyncSession, operator: Principal, client: OAuthClient
    ) -> tuple[OAuthClient, str]:
        overlap = timedelta(seconds=old_secret_expires_in)
        return client, await tenant_service.rotate_secret(session, operator, client, overlap)

    try:
        client, secret = _on_client(client_id, rotate)
    except Problem as exc:  # a revoked client
        raise click.UsageError(exc.detail or exc.title) from exc
    _echo_client(client, client_secret=secret)


@tenants.command("revoke-client")
@click.argument("client_id")
def tenants_revoke_client(client_id: str) -> None:
    """Revoke CLIENT_ID for good: its secrets and every token it obtained stop working."""

    async def revoke(
        session: AsyncSession, operator: Principal, client: OAuthClient
    ) -> OAuthClient:
        await tenant_service.revoke_client(session, operator, client)
        return client

    _echo_client(_on_client(client_id, revoke))


@main.group()
def keys() -> None:
    """Generate keys; re-seal stored secrets under the first data key."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new signing key (ES256) and a new data key, as the settings take them.

    Each line is NAME='JSON', for a .env file or a secret store; to rotate, put the new entry
    first in the list you already have. Nothing is stored or logged.
    """
    from app.core import data_keys
    from app.core.keys import generate_pem

    signing = [{"kid": f"sk-{secrets.token_hex(4)}", "alg": "ES256", "pem": generate_pem()}]
    click.echo(f"HOMEWORK_SIGNING_KEYS='{json.dumps(signing)}'")
    click.echo(f"HOMEWORK_DATA_KEYS='{json.dumps([data_keys.generate_entry()])}'")


@keys.command("rotate-data")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def keys_rotate_data(batch_size: int) -> None:
    """Re-seal every stored secret under the first of HOMEWORK_DATA_KEYS, and seal any still
    stored in plaintext; prints counts per column as JSON. Idempotent; exits 1 if a value
    opened with none of the keys (keep the old keys until it exits 0)."""
    from app.core.data_keys import DataKeys
    from app.services import sealed_data

    settings = get_settings()
    configure_logging(settings.log_level)

    async def run() -> dict[str, dict[str, int]]:
        database = Database(settings)
        try:
            counts = await sealed_data.rotate(
                database, DataKeys.from_settings(settings), batch_size
            )
        finally:
            await database.dispose()
        return {column: dict(sorted(c.items())) for column, c in counts.items()}

    counts = asyncio.run(run())
    click.echo(json.dumps(counts, indent=2))
    if any(c.get("unsealable") for c in counts.values()):
        sys.exit(1)


@main.command()
@click.option("--once", is_flag=True, help="Run one round, print its counts as JSON, and exit.")
@click.option(
    "--check",
    is_flag=True,
    help="Ask the worker running here (HOMEWORK_WORKER_PORT) whether its loops make progress; "
    "exit 1 if not.",
)
def worker(once: bool, check: bool) -> None:
    """Run the background jobs (occurrences, reminders, webhooks), each on its own.

    Several workers may run at once: they share the work batch by batch. SIGTERM or SIGINT
    stops the worker within its grace (docs/WORKER.md). With HOMEWORK_WORKER_PORT set, it
    serves /healthz and /metrics there. With --once, runs everything due now once and exits 1
    if a job failed.
    """
    import signal

    from app.core import trace_context
    from app.worker import loop, probe
    from app.worker.liveness import Liveness

    settings = get_settings()
    if check:
        if settings.worker_port is None:
            raise click.UsageError("--check needs HOMEWORK_WORKER_PORT (the worker's probe port).")
        healthy, said = probe.check(settings.worker_port)
        click.echo(said)
        sys.exit(0 if healthy else 1)
    configure_logging(settings.log_level)
    # If on: its provider exports what is still buffered as the process exits.
    trace_context.tracing_for(settings, "homework-worker")
    if once:
        result = asyncio.run(loop.run_once_with(settings))
        click.echo(json.dumps(result.counts))
        if result.failed:
            sys.exit(1)
        return

    async def work_until_signalled() -> None:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            running.add_signal_handler(signum, stop.set)
        liveness = Liveness(settings.worker_stall_seconds)
        if settings.worker_port is None:
            await loop.run_forever(settings, stop, liveness=liveness)
            return
        port, with_metrics = settings.worker_port, settings.metrics_enabled
        async with probe.serving(liveness, settings.worker_host, port, with_metrics=with_metrics):
            await loop.run_forever(settings, stop, liveness=liveness)

    # uvloop, as uvicorn uses for `serve`: its sockets cost the dispatcher a fraction of
    # asyncio's per POST and per statement.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(work_until_signalled())
