"""One Settings object for the whole service, read from `HOMEWORK_*` environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core import data_keys

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./homework.db"
# The origins `make run` serves the demo from, under both names a browser may use for it (the
# README and HOMEWORK_ISSUER say 127.0.0.1, browsers often say localhost): a page opened under
# one name can call the API under the other. Any other origin (a frontend's dev server) is
# named explicitly; nothing is allowed by default outside development.
DEVELOPMENT_CORS_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")
HTTP_SCHEMES = ("http", "https")


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOMEWORK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A refused setting's error names the setting and why, never its value: some are keys.
        hide_input_in_errors=True,
    )

    env: Environment = Environment.development
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=0, ge=0, le=500)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # A pooled connection idle for longer than this is pinged before use, so that a restarted
    # database costs no request an error; a busy connection is not (a ping is three round trips).
    db_ping_idle_after_seconds: float = Field(default=5.0, ge=0)
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    db_echo: bool = False
    max_body_bytes: int = Field(default=65536, ge=1024)
    # The whole body must arrive within this many seconds of the request's start, or it is
    # answered 408 and the connection closed (a client trickling a body holds a slot).
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # Browser apps on other origins (comma-separated exact origins, such as
    # https://app.example.com). Unset: the demo server's own origins in development
    # (DEVELOPMENT_CORS_ORIGINS), none otherwise. Never "*": requests carry credentials.
    cors_origins: str | None = None

    # `homework serve`'s uvicorn. Its HTTP parser: httptools is the faster, but bounds no
    # request head (a 2 MB head is read whole), so it expects the reverse proxy to; h11
    # answers 400 to a head still unfinished past server_max_header_bytes. Then how long an idle
    # keep-alive connection is kept, the most connections and tasks at once before new
    # requests get 503 (0: no limit), and the listen backlog.
    server_http: Literal["httptools", "h11"] = "httptools"
    server_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    server_max_header_bytes: int = Field(default=16384, ge=1024, le=1_048_576)
    server_limit_concurrency: int = Field(default=0, ge=0)
    server_backlog: int = Field(default=2048, ge=1)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses
    # or networks): the reverse proxy's. The client address in audit events and per-address
    # rate limits comes from there; anyone else could claim any address.
    server_forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "INFO"
    # OpenTelemetry tracing (docs/OBSERVABILITY.md): off unless this or the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT names an OTLP/HTTP collector (http://collector:4318).
    # The service name: unset, homework-api for `serve` and homework-worker for `worker`.
    tracing_endpoint: str | None = None
    tracing_service_name: str | None = None
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    # How long `homework migrate upgrade` / `serve` waits for another process's migration to
    # finish (they take turns under a lock: app/core/migrations.py) before giving up with an
    # error that names the lock.
    migration_lock_timeout_seconds: float = Field(default=300.0, gt=0, le=86400)

    # Tokens we issue (RFC 9068 JWT access tokens).
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "homework-api"
    # A JSON list of {"kid", "alg" (ES256, ES384 or RS256), "pem"} private keys; the first
    # signs, all are published in the JWKS so that tokens signed by a retiring key stay valid.
    signing_keys: SecretStr | None = None
    # Development only: where the key generated on first start is kept.
    dev_signing_key_path: Path = Path(".homework/signing-keys.json")
    # Secrets at rest (webhook signing secrets, stored answers to Idempotency-Keys) are sealed
    # with AES-256-GCM under these keys (app/core/data_keys.py): a JSON list of {"kid" (1-16 of
    # A-Z a-z 0-9 - _), "key" (base64 of 32 random bytes)}; the first seals, all unseal.
    # `homework keys generate` prints one. Outside production, unset: a key is generated once
    # and kept at dev_data_key_path.
    data_keys: SecretStr | None = None
    dev_data_key_path: Path = Path(".homework/data-keys.json")
    system_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    user_token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # Tenants' own identity providers: how long a fetched JWKS is trusted, and the least time
    # between two fetches caused by an unknown kid.
    idp_jwks_ttl_seconds: int = Field(default=3600, ge=60)
    idp_jwks_min_refetch_seconds: float = Field(default=60.0, ge=0)
    # The longest `exp - iat` accepted from a tenant's IdP (ours are far shorter), for every
    # tenant; `token_leeway_seconds` bounds how far ahead of our clock its `iat` may be.
    idp_max_token_lifetime_seconds: int = Field(default=86400, ge=60, le=30 * 86400)

    # Outbound calls to URLs that tenants give us (webhooks, IdP JWKS).
    outbound_allow_http: bool = False
    # Hosts allowed although they resolve to private or loopback addresses (comma-separated).
    outbound_allowed_hosts: str = ""

    # Webhook delivery: one attempt's deadline, and how many attempts a worker process has in
    # flight at once: in all, per tenant and per endpoint (docs/WORKER.md, "Fairness").
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    webhook_max_concurrency: int = Field(default=64, ge=1, le=1000)
    webhook_max_per_tenant: int = Field(default=16, ge=1, le=1000)
    webhook_max_per_endpoint: int = Field(default=4, ge=1, le=100)

    # The background worker (`homework worker`): how long a job with nothing to do waits before
    # it looks again (a NOTIFY or an in-process wake-up ends the wait at once), how many rows
    # one transaction claims (smaller batches hold their row locks for less time), and how long
    # attempts in flight may run on after SIGTERM.
    worker_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    worker_batch_size: int = Field(default=200, ge=1, le=10_000)
    worker_shutdown_grace_seconds: float = Field(default=5.0, ge=0, le=60)
    # The worker's own small HTTP port (`homework worker`): GET /healthz (200 while every job
    # loop makes progress, 503 naming the stalled ones) and GET /metrics. Unset: no port. A
    # loop counts as stalled once it is this far past the time it said it would be back.
    worker_port: int | None = Field(default=None, ge=1, le=65535)
    worker_host: str = "0.0.0.0"  # noqa: S104 (a container's probe comes from outside it)
    worker_stall_seconds: float = Field(default=120.0, gt=0, le=3600)

    # Prometheus metrics (docs/OBSERVABILITY.md): on the API's port at /metrics, or on a port
    # of their own (then the API's port has none). Tenant ids as labels only when asked for,
    # and only on the families whose names say `tenant`. How often the worker reads its
    # backlogs (due reminders, events to fan out, due deliveries, failing endpoints).
    metrics_enabled: bool = True
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_tenant_labels: bool = False
    metrics_backlog_seconds: float = Field(default=15.0, gt=0, le=3600)
    # Run the worker inside `homework serve` (one process for the API and the jobs). Unset: on
    # for the embedded SQLite database in development (`make run`), off otherwise.
    embedded_worker: bool | None = None

    # Quotas and rate limits (docs/RATE_LIMITS.md), each "<count>/<second|minute|hour>".
    # Counted per process, or in Redis (redis://host:6379/0) shared by every process.
    rate_limit_storage_url: str = ""
    rate_limit_key_prefix: str = "homework"
    # Per token subject and per tenant, by route class.
    rate_limit_subject_reads: str = "1200/minute"
    rate_limit_subject_writes: str = "600/minute"
    rate_limit_subject_heavy: str = "60/minute"
    rate_limit_tenant_reads: str = "12000/minute"
    rate_limit_tenant_writes: str = "6000/minute"
    rate_limit_tenant_heavy: str = "600/minute"
    # POST /oauth/token: per source address (a failed authentication costs 5), per OAuth client
    # (tokens issued), and failed authentications per client and address.
    rate_limit_token_address: str = "300/minute"
    rate_limit_token_client: str = "600/minute"
    rate_limit_token_failures: str = "10/minute"
    # Per tenant, any of the limits above by name without the prefix, as JSON:
    # {"ten_…": {"subject_reads": "3000/minute"}}.
    rate_limit_tenants: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("rate_limit_tenants")
    @classmethod
    def _known_tenant_limits(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for tenant, overrides in value.items():
            unknown = set(overrides) - set(RATE_LIMIT_NAMES)
            if unknown:
                raise ValueError(f"{tenant}: unknown limits {sorted(unknown)}")
            for name, limit in overrides.items():
                _check_limit(f"{tenant}.{name}", limit)
        return value

    @model_validator(mode="after")
    def _valid_limits(self) -> Self:
        for name in RATE_LIMIT_NAMES:
            _check_limit(f"rate_limit_{name}", getattr(self, f"rate_limit_{name}"))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_embedded_worker(self) -> bool:
        if self.embedded_worker is not None:
            return self.embedded_worker
        return self.is_sqlite and self.env == Environment.development

    @property
    def allowed_cors_origins(self) -> list[str]:
        if self.cors_origins is None:
            return list(DEVELOPMENT_CORS_ORIGINS) if self.env == Environment.development else []
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("cors_origins")
    @classmethod
    def exact_origins_only(cls, value: str | None) -> str | None:
        for origin in (o.strip() for o in (value or "").split(",") if o.strip()):
            parts = urlsplit(origin)
            exact = f"{parts.scheme}://{parts.netloc}" == origin and parts.scheme in HTTP_SCHEMES
            if not exact or "*" in origin:
                raise ValueError(
                    f"HOMEWORK_CORS_ORIGINS takes exact origins (scheme://host[:port], no path, "
                    f"no wildcard: requests carry credentials), not {origin!r}"
                )
        return value

    @field_validator("data_keys")
    @classmethod
    def _usable_data_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            data_keys.parse(value.get_secret_value())
        return value

    @property
    def allowed_outbound_hosts(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.outbound_allowed_hosts.split(",") if h.strip()
        )

    @model_validator(mode="after")
    def refuse_insecure_production(self) -> Self:
        if self.env is not Environment.production:
            return self
        problems = []
        if self.is_sqlite:
            # Any SQLite file, not only the default one: production is PostgreSQL (one
            # database for every API and worker process, its backups, its locks).
            problems.append("HOMEWORK_DATABASE_URL must name a PostgreSQL database in production")
        if self.signing_keys is None:
            problems.append("HOMEWORK_SIGNING_KEYS must be set in production")
        if self.data_keys is None:
            problems.append("HOMEWORK_DATA_KEYS must be set in production (homework keys generate)")
        if self.issuer.startswith("http://"):
            problems.append("HOMEWORK_ISSUER must be an https URL in production")
        if self.outbound_allow_http:
            problems.append("HOMEWORK_OUTBOUND_ALLOW_HTTP would send client events in clear text")
        if self.db_echo:
            problems.append("HOMEWORK_DB_ECHO would log query parameters (client data)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


RATE_LIMIT_NAMES = tuple(
    [f"{who}_{kind}" for who in ("subject", "tenant") for kind in ("reads", "writes", "heavy")]
    + ["token_address", "token_client", "token_failures"]
)


def _check_limit(name: str, value: str) -> None:
    try:
        limits.parse(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {value!r} is not a limit such as '600/minute'") from exc


@lru_cache
def get_settings() -> Settings:
    return Settings()
