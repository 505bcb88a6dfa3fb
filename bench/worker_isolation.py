"""Worker isolation at scale: how long one tenant's distress flag and reminders take to reach its
receiver while another tenant's receiver hangs or crawls through a backlog, and how fast one
worker drains a large backlog to a fast receiver while the API keeps answering.

    .venv/bin/python -m bench.worker_isolation [--skip-sqlite] [--skip-postgres] [--skip-drain]
        [--only alone,hang,slow] [--flags 40] [--flag-interval 0.2] [--reminders 40]
        [--reminder-spread 15] [--hang-backlog 300] [--slow-backlog 1500] [--events 20000]
        [--read-rate 50] [--idle-seconds 5] [--keep-logs] [--profile-worker]

Everything runs as in production, in processes of its own, on loopback only: the API is
`homework serve --no-migrate` (one uvicorn worker); on PostgreSQL the worker is a separate
`homework worker` process, on SQLite it is the embedded worker (`HOMEWORK_EMBEDDED_WORKER=true`,
inside the API process, a SQLite file). Receivers are bench/receiver.py processes noting the wall
clock (`time.time()`, shared by every process here) at which each `webhook-id` first arrives.
Every condition gets a fresh database (on PostgreSQL one next to HOMEWORK_TEST_POSTGRES_URL's,
by default postgresql+asyncpg://postgres@127.0.0.1:5432/test, dropped afterwards), migrated with
`app.core.migrations.upgrade`, fresh tenants and fresh processes, so no condition inherits
another's backlog, circuit breakers or leases. HOMEWORK_WEBHOOK_TIMEOUT_SECONDS is 5; the rest
are the defaults (4 POSTs at once per endpoint, 16 per tenant, 64 per process).

1. **Distress flag, POST -> receiver**, and 3. **reminder lateness**, in three conditions:
   (a) the victim tenant alone; (b) beside a noisy tenant whose receiver hangs (sleeps 10 s, past
   the 5 s timeout, on every request) with `--hang-backlog` deliveries pending; (c) beside a noisy
   tenant whose receiver answers in 0.5-1 s with `--slow-backlog` deliveries pending. The victim
   vendor sets everything up through the API (OAuth client credentials, then RFC 8693 token
   exchange for its clinician and client; a webhook endpoint subscribed to every type; one-off
   homework due in three hours, some with `"reminders": {"lead_minutes": [60]}`), then waits
   until its receiver has every `assignment.created`. The noisy tenant's backlog is committed in
   one transaction (`record_event`, as tests/worker/test_isolation.py does) and the run waits
   until its receiver holds the endpoint's 4 slots. Then the victim's reminders are moved (UPDATE
   of `reminders.due_at`) to come due at known instants spread over `--reminder-spread` seconds
   from 3 s on, and its client POSTs `--flags` completions `not_done` with the barrier
   `felt_overwhelmed`, one every `--flag-interval` s. Reported: POST (time.time() just before the
   request) to the receiver's first sight of its `completion.distress_flagged`, and the
   reminder's due_at to its `reminder.due`; p50 / p99 / max over every one (a flag or reminder
   that never arrives within 30 s is counted as missing and the run fails).
2. **Backlog drain** (PostgreSQL): `--events` events committed for one tenant with one endpoint
   at a receiver that answers 200 at once (500 per transaction, before any worker runs), then one
   `homework worker` process is started and drains them. Reported: deliveries per second from
   the first arrival to the last (and from the worker's spawn), `GET /v1/me/homework` as a client
   (one connection, `--read-rate` a second) during the drain and idle just before it, and the
   exactly-once check: webhook_attempts rows = deliveries `delivered` = events = requests the
   receiver saw.

Prints a table and writes bench/results/worker_isolation.json. Exits 0 if every run completed
(everything arrived, nothing twice); the figures are reported beside their goals, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.config import Environment, Settings
from app.core.db import Database
from app.models import Reminder, WebhookAttempt, WebhookDelivery
from app.services import tenants
from app.services.events import EventType, record_event
from app.services.tenants import IssuedCredentials

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TEMPLATE = "tpl_builtin_mood_log"
ZONE = "Europe/London"
WEBHOOK_TIMEOUT_SECONDS = 5.0
HANG_SECONDS = 10.0
SLOW_SECONDS = (0.5, 1.0)
COMMIT_BATCH = 500
ARRIVAL_WAIT_SECONDS = 30.0
FIRST_REMINDER_AFTER_SECONDS = 3.0
FLAG_GOAL_SECONDS = 1.0
DRAIN_GOAL_PER_SECOND = 1000.0
DRAIN_BEFORE_PER_SECOND = 436.0  # the worker before the lanes (commit 75eb11f), same backlog
NOISY_CLIENT = "clt_01noisy0000000000000000000"
BACKENDS = {"postgresql": "PostgreSQL (API + worker)", "sqlite": "SQLite, embedded worker"}


def say(message: str = "") -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class Trouble:
    key: str
    label: str
    receiver_delay: str | None  # bench.receiver's --delay for the noisy tenant; None: no tenant
    backlog: int


def code_state() -> dict[str, Any]:
    """The commit measured and what of app/ and migrations/ differs from it (read only: git
    never writes the index here), since uncommitted work changes the figures."""

    def git(*arguments: str) -> str:
        try:
            return subprocess.run(
                ["git", "--no-optional-locks", *arguments],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        except OSError:
            return ""

    paths = ("--", "app", "migrations")
    diff = git("diff", "HEAD", *paths)
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "changed_files": git("diff", "--name-only", "HEAD", *paths).split(),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


def describe_code(code: dict[str, Any]) -> str:
    if not code["changed_files"]:
        return f"code: {code['commit']}, app/ as committed"
    return (
        f"code: {code['commit']} with uncommitted changes to {len(code['changed_files'])} files "
        f"of app/ and migrations/ (diff sha256 {code['diff_sha256']}): "
        + ", ".join(code["changed_files"])
    )


def troubles(options: argparse.Namespace) -> list[Trouble]:
    every = [
        Trouble("alone", "alone", None, 0),
        Trouble(
            "hang",
            f"beside a hang, {options.hang_backlog:,} pending",
            f"{HANG_SECONDS}",
            options.hang_backlog,
        ),
        Trouble(
            "slow",
            f"beside a slow one, {options.slow_backlog:,} pending",
            f"{SLOW_SECONDS[0]}:{SLOW_SECONDS[1]}",
            options.slow_backlog,
        ),
    ]
    wanted = set(options.only.split(","))
    return [t for t in every if t.key in wanted]


# --- Processes: receivers, the API, the worker ---------------------------------------------------


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_ticks() -> tuple[int, int]:
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(parts), parts[3] + parts[4]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    watched: bool = True  # its exit fails the run, and its log is searched for problems

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        return _proc_cpu(self.process.pid)

    def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def problems(self) -> list[str]:
        """Log lines at warning or above, and anything that is not one of our JSON lines."""
        found: list[str] = []
        if not self.watched:
            return found
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                level = json.loads(line).get("level", "")
            except (ValueError, AttributeError):
                level = "not json"
            if level not in ("debug", "info"):
                found.append(f"{self.name}: {line[:400]}")
        return found


def start_receiver(name: str, delay: str, workdir: Path) -> tuple[Service, int]:
    log = workdir / f"receiver-{name}.log"
    with log.open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", "--delay", delay],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip():
        process.wait(5)
        raise RuntimeError(f"receiver {name} did not start: {log.read_text()[-2000:]}")
    return Service(f"receiver {name}", process, log), int(line)


def service_env(
    url: str, ports: Sequence[int], *, embedded: bool, log_level: str
) -> dict[str, str]:
    # Only our settings: whatever HOMEWORK_* this shell has must not change the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEWORK_")}
    env.update(
        {
            "HOMEWORK_DATABASE_URL": url,
            "HOMEWORK_ENV": "development",
            "HOMEWORK_LOG_LEVEL": log_level,
            "HOMEWORK_OUTBOUND_ALLOW_HTTP": "true",
            "HOMEWORK_OUTBOUND_ALLOWED_HOSTS": ",".join(f"127.0.0.1:{p}" for p in ports),
            "HOMEWORK_WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT_SECONDS),
            "HOMEWORK_EMBEDDED_WORKER": "true" if embedded else "false",
            "HOMEWORK_WORKER_SHUTDOWN_GRACE_SECONDS": "1",
            "HOMEWORK_USER_TOKEN_TTL_SECONDS": "7200",
        }
    )
    return env


def start_homework(
    name: str, arguments: Sequence[str], env: dict[str, str], workdir: Path
) -> Service:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "homework"), *arguments],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Service(name, process, log)


def start_api(
    url: str, ports: Sequence[int], workdir: Path, *, embedded: bool
) -> tuple[Service, str]:
    port = free_port()
    env = service_env(url, ports, embedded=embedded, log_level="WARNING")
    api = start_homework("api", ["serve", "--no-migrate", "--port", str(port)], env, workdir)
    return api, f"http://127.0.0.1:{port}"


def start_worker(url: str, ports: Sequence[int], workdir: Path) -> Service:
    env = service_env(url, ports, embedded=False, log_level="INFO")
    return start_homework("worker", ["worker"], env, workdir)


def profile(target: Service, workdir: Path) -> Service:
    """py-spy (in the virtualenv) on `target` until it exits: collapsed stacks, a line each,
    in bench/results/profiles/ (not committed)."""
    output = RESULTS / "profiles" / f"{target.name}_drain.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    log = workdir / "py-spy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "py-spy"),
                "record",
                f"--pid={target.process.pid}",
                "--format=raw",
                "--rate=100",
                "--nonblocking",
                f"--output={output}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Service("py-spy", process, log, watched=False)


def check_alive(services: Sequence[Service]) -> None:
    for service in services:
        if service.watched and not service.alive:
            raise RuntimeError(
                f"{service.name} exited ({service.process.returncode}):\n{service.tail()}"
            )


async def wait_ready(http: httpx.AsyncClient, api: Service, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check_alive([api])
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API was not ready in {seconds:.0f} s:\n{api.tail()}")


# --- Databases -----------------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


def bench_settings(url: str) -> Settings:
    return Settings(
        _env_file=None, env=Environment.development, database_url=url, log_level="WARNING"
    )


@dataclass
class Store:
    kind: str
    url: str
    admin_url: str = ""
    name: str = ""


async def new_store(kind: str, admin_url: str, workdir: Path) -> Store:
    if kind == "sqlite":
        store = Store(kind, f"sqlite+aiosqlite:///{workdir / 'homework.db'}")
    else:
        name = f"homework_bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(_dsn(admin_url))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = make_url(admin_url).set(database=name).render_as_string(False)
        store = Store(kind, url, admin_url, name)
    await migrations.upgrade(bench_settings(store.url))
    return store


async def drop_store(store: Store) -> None:
    if store.kind != "postgresql":
        return  # the SQLite file goes with its working directory
    admin = await asyncpg.connect(_dsn(store.admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{store.name}" WITH (FORCE)')
    finally:
        await admin.close()


async def tear_down(
    services: list[Service], database: Database, store: Store, result: dict[str, Any]
) -> None:
    """Stop the run's processes (last started first), keep what their logs complained of,
    and drop its database."""
    for service in reversed(services):
        service.stop()
    result["log_problems"] = [p for s in services for p in s.problems()]
    await database.dispose()
    await drop_store(store)


async def create_tenant(database: Database, name: str) -> IssuedCredentials:
    async with database.sessionmaker() as session, session.begin():
        return await tenants.create_tenant(session, name)


async def commit_events(database: Database, tenant_id: str, client_id: str, count: int) -> None:
    """`count` events in one transaction, as a busy tenant's service would record them."""
    async with database.sessionmaker() as session, session.begin():
        for n in range(count):
            record_event(
                session,
                tenant_id,
                EventType.assignment_created,
                client_id=client_id,
                assignment_id=f"asg_bench{uuid.uuid4().hex[:22]}{n % 10}",
            )


async def move_reminders(
    database: Database, assignment_ids: Sequence[str], first_due: float, spread: float
) -> dict[str, float]:
    """Each assignment's scheduled reminder made due at its instant (epoch seconds)."""
    last = max(1, len(assignment_ids) - 1)
    planned = {a: first_due + spread * n / last for n, a in enumerate(assignment_ids)}
    async with database.sessionmaker() as session, session.begin():
        for assignment_id, due in planned.items():
            moved = await session.execute(
                update(Reminder)
                .where(Reminder.assignment_id == assignment_id, Reminder.state == "scheduled")
                .values(due_at=datetime.fromtimestamp(due, UTC))
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise RuntimeError(f"{moved.rowcount} scheduled reminders for {assignment_id}")  # type: ignore[attr-defined]
    return planned


async def endpoint_counts(database: Database, endpoint_id: str) -> dict[str, int]:
    async with database.read_sessionmaker() as session:
        states = (
            await session.execute(
                select(WebhookDelivery.state, func.count())
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .group_by(WebhookDelivery.state)
            )
        ).all()
        attempts = await session.scalar(
            select(func.count())
            .select_from(WebhookAttempt)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
        )
    return {**{state: count for state, count in states}, "attempts": attempts or 0}


# --- The API, as a vendor's backend uses it ------------------------------------------------------


async def call(
    http: httpx.AsyncClient, method: str, path: str, expect: int = 201, **kwargs: Any
) -> Any:
    response = await http.request(method, path, **kwargs)
    if response.status_code != expect:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Vendor:
    http: httpx.AsyncClient
    credentials: IssuedCredentials
    system: dict[str, str] | None = None

    async def token(self, **form: str) -> dict[str, str]:
        auth = (self.credentials.client_id, self.credentials.client_secret)
        issued = await call(self.http, "POST", "/oauth/token", 200, data=form, auth=auth)
        return bearer(issued["access_token"])

    async def connect(self) -> None:
        self.system = await self.token(grant_type="client_credentials")

    async def person(self, kind: str, our_id: str) -> dict[str, str]:
        return await self.token(
            grant_type=TOKEN_EXCHANGE,
            subject_token=our_id,
            subject_token_type=f"urn:homework:token-type:{kind}-id",
        )

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        headers = {**(headers or self.system or {}), "Idempotency-Key": str(uuid.uuid4())}
        return await call(self.http, "POST", path, json=body, headers=headers)

    async def endpoint(self, port: int) -> str:
        url = f"http://127.0.0.1:{port}/hooks"
        created = await self.post("/v1/webhook-endpoints", {"url": url, "event_types": []})
        return str(created["id"])


@dataclass
class People:
    client_id: str
    clinician: dict[str, str]  # headers
    client: dict[str, str]


async def people(vendor: Vendor, name: str) -> People:
    clinician = await vendor.post(
        "/v1/clinicians", {"external_id": f"{name}-clinician", "display_name": "Dr Bench"}
    )
    client = await vendor.post(
        "/v1/clients",
        {
            "external_id": f"{name}-client",
            "display_name": "Sam",
            "time_zone": ZONE,
            "locale": "en-GB",
        },
    )
    await vendor.post(f"/v1/clients/{client['id']}/care-team", {"clinician_id": clinician["id"]})
    return People(
        client["id"],
        await vendor.person("clinician", clinician["id"]),
        await vendor.person("client", client["id"]),
    )


async def one_offs(
    vendor: Vendor, who: People, count: int, *, reminders: bool
) -> list[tuple[str, str]]:
    """`count` one-off homework for the client, due in three hours (their local time): the
    (assignment id, occurrence id) of each. With `reminders`, each has one reminder an hour
    before, to be moved to the instant wanted."""
    due = (datetime.now(UTC) + timedelta(hours=3)).astimezone(ZoneInfo(ZONE))
    body: dict[str, Any] = {
        "client_id": who.client_id,
        "template_id": TEMPLATE,
        "schedule": {"type": "once", "due_at": f"{due:%Y-%m-%dT%H:%M}"},
    }
    if reminders:
        body["reminders"] = {"lead_minutes": [60]}
    gate = asyncio.Semaphore(4)

    async def one() -> tuple[str, str]:
        async with gate:
            created = await vendor.post("/v1/assignments", body, who.clinician)
        return created["id"], created["occurrences"][0]["id"]

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def raise_flags(
    http: httpx.AsyncClient, who: People, homework: Sequence[tuple[str, str]], interval: float
) -> tuple[dict[str, float], list[float], list[str]]:
    """One distress flag per occurrence, `interval` apart: (assignment id -> time.time() just
    before its POST, the POSTs' response times, what went wrong)."""
    flagged: dict[str, float] = {}
    responses: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    for n, (assignment_id, occurrence_id) in enumerate(homework):
        pause = started + n * interval - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        headers = {**who.client, "Idempotency-Key": str(uuid.uuid4())}
        body = {
            "occurrence_id": occurrence_id,
            "status": "not_done",
            "barriers": ["felt_overwhelmed"],
        }
        at, sent = time.time(), time.perf_counter()
        response = await http.post("/v1/completions", json=body, headers=headers)
        responses.append(time.perf_counter() - sent)
        if response.status_code == 201 and response.json().get("distress_flagged"):
            flagged[assignment_id] = at
        else:
            failures.append(f"POST /v1/completions: {response.status_code} {response.text[:300]}")
    return flagged, responses, failures


# --- Receivers, from here ------------------------------------------------------------------------


async def receiver_json(http: httpx.AsyncClient, port: int, what: str = "stats") -> Any:
    response = await http.get(f"http://127.0.0.1:{port}/{what}")
    response.raise_for_status()
    return response.json()


async def until(
    http: httpx.AsyncClient,
    port: int,
    condition: Callable[[dict[str, Any]], bool],
    seconds: float,
    services: Sequence[Service],
    every: float = 0.1,
) -> tuple[bool, dict[str, Any]]:
    """Poll the receiver's counts until `condition` holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        stats = await receiver_json(http, port)
        if condition(stats):
            return True, stats
        check_alive(services)
        if time.monotonic() > deadline:
            return False, stats
        await asyncio.sleep(every)


def typed(stats: dict[str, Any], event_type: str) -> int:
    return int(stats["types"].get(event_type, 0))


# --- Figures -------------------------------------------------------------------------------------


def summary(seconds: Sequence[float]) -> dict[str, Any]:
    values = sorted(seconds)
    if not values:
        return {"count": 0}
    if len(values) == 1:
        p50 = p99 = values[0]
    else:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        p50, p99 = cuts[49], cuts[98]
    return {
        "count": len(values),
        "p50_ms": round(p50 * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def cell(figures: dict[str, Any] | None) -> str:
    if not figures or not figures.get("count"):
        return "failed" if figures is not None else "-"
    text = f"{ms(figures['p50_ms'])} / {ms(figures['p99_ms'])} / {ms(figures['max_ms'])} ms"
    if figures.get("missing"):
        text += f" ({figures['missing']} lost)"
    return text


# --- One condition: the victim's flags and reminders, beside trouble or alone -------------------


async def run_condition(
    kind: str, trouble: Trouble, options: argparse.Namespace, admin_url: str, root: Path
) -> dict[str, Any]:
    workdir = root / f"{kind}-{trouble.key}"
    workdir.mkdir()
    result: dict[str, Any] = {"backend": kind, "condition": trouble.key, "label": trouble.label}
    services: list[Service] = []
    store = await new_store(kind, admin_url, workdir)
    database = Database(bench_settings(store.url))
    try:
        victim_rx, victim_port = start_receiver("victim", "0", workdir)
        services.append(victim_rx)
        ports = [victim_port]
        noisy_port = 0
        if trouble.receiver_delay is not None:
            noisy_rx, noisy_port = start_receiver("noisy", trouble.receiver_delay, workdir)
            services.append(noisy_rx)
            ports.append(noisy_port)
        victim_credentials = await create_tenant(database, "Victim Telehealth")
        noisy_credentials = await create_tenant(database, "Noisy Telehealth")
        api, base = start_api(store.url, ports, workdir, embedded=kind == "sqlite")
        services.append(api)
        if kind == "postgresql":
            services.append(start_worker(store.url, ports, workdir))
        async with (
            httpx.AsyncClient(base_url=base, timeout=30.0) as http,
            httpx.AsyncClient(timeout=10.0) as receivers,
        ):
            await wait_ready(http, api)
            victim = Vendor(http, victim_credentials)
            await victim.connect()
            await victim.endpoint(victim_port)
            noisy_endpoint = ""
            noisy_before: dict[str, Any] = {}
            if noisy_port:
                noisy = Vendor(http, noisy_credentials)
                await noisy.connect()
                noisy_endpoint = await noisy.endpoint(noisy_port)
            who = await people(victim, "victim")
            flag_homework = await one_offs(victim, who, options.flags, reminders=False)
            reminder_homework = await one_offs(victim, who, options.reminders, reminders=True)
            setup = options.flags + options.reminders
            arrived, _ = await until(
                receivers,
                victim_port,
                lambda s: typed(s, "assignment.created") >= setup,
                60,
                services,
            )
            if not arrived:
                raise RuntimeError("the victim's assignment.created deliveries did not all arrive")

            if noisy_port:
                await commit_events(
                    database, noisy_credentials.tenant_id, NOISY_CLIENT, trouble.backlog
                )
                slots = min(4, trouble.backlog)
                swinging, _ = await until(
                    receivers, noisy_port, lambda s: s["requests"] >= slots, 30, services
                )
                if not swinging:
                    raise RuntimeError("the noisy tenant's deliveries never started")
                await asyncio.sleep(1.0)  # its slots held, its backlog queued
                noisy_before = await receiver_json(receivers, noisy_port)

            planned = await move_reminders(
                database,
                [a for a, _ in reminder_homework],
                time.time() + FIRST_REMINDER_AFTER_SECONDS,
                options.reminder_spread,
            )
            flagged, responses, failures = await raise_flags(
                http, who, flag_homework, options.flag_interval
            )
            wait = max(max(planned.values()) - time.time(), 0) + ARRIVAL_WAIT_SECONDS
            await until(
                receivers,
                victim_port,
                lambda s: (
                    typed(s, "completion.distress_flagged") >= len(flagged)
                    and typed(s, "reminder.due") >= len(planned)
                ),
                wait,
                services,
                every=0.25,
            )
            first = (await receiver_json(receivers, victim_port, "arrivals"))["first"]
            seen: dict[tuple[str, str], float] = {}
            for at, event_type, assignment_id in first.values():
                key = (event_type, assignment_id)
                seen[key] = min(at, seen.get(key, at))
            latencies = [
                seen[("completion.distress_flagged", a)] - at
                for a, at in flagged.items()
                if ("completion.distress_flagged", a) in seen
            ]
            lateness = [
                seen[("reminder.due", a)] - due
                for a, due in planned.items()
                if ("reminder.due", a) in seen
            ]
            result["flags"] = {
                **summary(latencies),
                "missing": options.flags - len(latencies),
                "post_response": summary(responses),
                "failures": failures,
            }
            result["reminders"] = {
                **summary(lateness),
                "missing": options.reminders - len(lateness),
            }
            if noisy_port:
                noisy_after = await receiver_json(receivers, noisy_port)
                result["noisy"] = {
                    "receiver": trouble.receiver_delay,
                    "backlog": trouble.backlog,
                    "requests_before_measuring": noisy_before["requests"],
                    "requests_while_measuring": noisy_after["requests"] - noisy_before["requests"],
                    "deliveries_afterwards": await endpoint_counts(database, noisy_endpoint),
                }
            check_alive(services)
        result["complete"] = not (
            failures or result["flags"]["missing"] or result["reminders"]["missing"]
        )
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["complete"] = False
    finally:
        await tear_down(services, database, store, result)
    return result


def describe_condition(result: dict[str, Any]) -> None:
    if "error" in result:
        say(f"  !! {result['error']}")
        return
    flags, reminders = result["flags"], result["reminders"]
    say(
        f"  distress flag POST -> receiver: {cell(flags)} over {flags['count']} "
        f"(the POST itself: p50 {ms(flags['post_response']['p50_ms'])} ms, "
        f"p99 {ms(flags['post_response']['p99_ms'])} ms)"
    )
    say(f"  reminder due_at -> receiver:    {cell(reminders)} over {reminders['count']}")
    noisy = result.get("noisy")
    if noisy:
        say(
            f"  the noisy receiver saw {noisy['requests_while_measuring']:,} requests meanwhile; "
            f"its deliveries afterwards: {noisy['deliveries_afterwards']}"
        )
    for failure in result["flags"]["failures"][:3]:
        say(f"  !! {failure}")
    for problem in result["log_problems"][:5]:
        say(f"  log: {problem}")


# --- The backlog drain ---------------------------------------------------------------------------


async def read_loop(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    rate: float,
    stop: asyncio.Event,
    samples: list[tuple[float, float, int]],
) -> None:
    """GET /v1/me/homework `rate` times a second on one connection: (started, seconds, status)."""
    interval = 1.0 / rate
    next_at = time.perf_counter()
    while not stop.is_set():
        at, started = time.time(), time.perf_counter()
        response = await http.get("/v1/me/homework", headers=headers)
        samples.append((at, time.perf_counter() - started, response.status_code))
        next_at += interval
        pause = next_at - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        else:
            next_at = time.perf_counter()


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def backend_cpu(store: Store) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the store's database."""
    admin = await asyncpg.connect(_dsn(store.admin_url))
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            store.name,
        )
    finally:
        await admin.close()
    return {row["pid"]: _proc_cpu(row["pid"]) for row in rows}


def timeline(first: dict[str, Any], since: float) -> list[int]:
    """First arrivals per 5 s from `since`: whether the rate holds up as the backlog drains."""
    buckets: list[int] = []
    for at, *_ in first.values():
        index = max(0, int((at - since) // 5))
        buckets.extend([0] * (index + 1 - len(buckets)))
        buckets[index] += 1
    return buckets


def reads_summary(samples: Sequence[tuple[float, float, int]]) -> dict[str, Any]:
    return {
        **summary([s for _, s, _ in samples]),
        "not_200": sum(1 for *_, status in samples if status != 200),
    }


async def run_drain(options: argparse.Namespace, admin_url: str, root: Path) -> dict[str, Any]:
    events = options.events
    workdir = root / "postgresql-drain"
    workdir.mkdir()
    result: dict[str, Any] = {"events": events}
    services: list[Service] = []
    store = await new_store("postgresql", admin_url, workdir)
    database = Database(bench_settings(store.url))
    try:
        receiver, port = start_receiver("fast", "0", workdir)
        services.append(receiver)
        credentials = await create_tenant(database, "Busy Telehealth")
        api, base = start_api(store.url, [port], workdir, embedded=False)
        services.append(api)
        async with (
            httpx.AsyncClient(base_url=base, timeout=30.0) as http,
            httpx.AsyncClient(base_url=base, timeout=30.0) as reader,
            httpx.AsyncClient(timeout=10.0) as receivers,
        ):
            await wait_ready(http, api)
            vendor = Vendor(http, credentials)
            await vendor.connect()
            who = await people(vendor, "busy")
            await one_offs(vendor, who, 2, reminders=False)
            # Made after the setup's own events, so that it gets exactly the backlog.
            endpoint = await vendor.endpoint(port)
            started = time.perf_counter()
            for offset in range(0, events, COMMIT_BATCH):
                count = min(COMMIT_BATCH, events - offset)
                await commit_events(database, credentials.tenant_id, who.client_id, count)
            result["commit_seconds"] = round(time.perf_counter() - started, 1)
            say(f"  committed {events:,} events in {result['commit_seconds']} s")

            idle: list[tuple[float, float, int]] = []
            stop = asyncio.Event()
            idle_reads = asyncio.create_task(
                read_loop(reader, who.client, options.read_rate, stop, idle)
            )
            await asyncio.sleep(options.idle_seconds)
            stop.set()
            await idle_reads

            busy: list[tuple[float, float, int]] = []
            stop = asyncio.Event()
            reads = asyncio.create_task(
                read_loop(reader, who.client, options.read_rate, stop, busy)
            )
            api_cpu, machine = api.cpu_seconds(), _machine_ticks()
            own_cpu, receiver_cpu = _own_cpu(), receiver.cpu_seconds()
            postgres_cpu = await backend_cpu(store)
            spawned = time.time()
            worker = start_worker(store.url, [port], workdir)
            services.append(worker)
            if options.profile_worker:
                services.append(profile(worker, workdir))
            try:
                arrived, stats = await until(
                    receivers,
                    port,
                    lambda s: s["distinct"] >= events,
                    max(120.0, events / 50),
                    services,
                    every=0.5,
                )
            finally:
                stop.set()
                await reads
            wall = time.time() - spawned
            total, idle_ticks = _machine_ticks()
            busy_share = 1 - (idle_ticks - machine[1]) / max(1, total - machine[0])
            postgres_after = await backend_cpu(store)
            cores = {
                "worker": worker.cpu_seconds() / wall,
                "postgresql": sum(
                    cpu - postgres_cpu.get(pid, 0.0) for pid, cpu in postgres_after.items()
                )
                / wall,
                "api": (api.cpu_seconds() - api_cpu) / wall,
                "receiver": (receiver.cpu_seconds() - receiver_cpu) / wall,
                "this_benchmark": (_own_cpu() - own_cpu) / wall,
            }
            cores["everything_else"] = max(
                0.0, busy_share * (os.cpu_count() or 1) - sum(cores.values())
            )
            result["cores_used"] = {name: round(used, 2) for name, used in cores.items()}
            result["machine_busy"] = round(busy_share, 2)
            first, last = stats["first_at"], stats["last_new_at"]
            result["arrived"] = stats["distinct"]
            result["complete"] = arrived
            if first is not None and last is not None and last > first:
                result["first_arrival_after_spawn_seconds"] = round(first - spawned, 2)
                result["drain_seconds"] = round(last - first, 2)
                result["per_second_from_first_arrival"] = round(
                    (stats["distinct"] - 1) / (last - first), 1
                )
                result["per_second_from_spawn"] = round(stats["distinct"] / (last - spawned), 1)
            else:
                first, last = spawned, spawned + wall
            result["reads_idle"] = reads_summary(idle)
            result["reads_during_drain"] = reads_summary([s for s in busy if first <= s[0] <= last])

            # Its outcomes are recorded just after the last POST: wait for them, then count.
            deadline = time.monotonic() + 30
            counts = await endpoint_counts(database, endpoint)
            while counts.get("delivered", 0) < result["arrived"] and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                counts = await endpoint_counts(database, endpoint)
            result["worker_cpu_seconds"] = round(worker.cpu_seconds(), 1)
            worker.stop()
            result["arrivals_per_5_seconds"] = timeline(
                (await receiver_json(receivers, port, "arrivals"))["first"], spawned
            )
            counts = await endpoint_counts(database, endpoint)
            requests = (await receiver_json(receivers, port))["requests"]
            result["deliveries"] = counts
            result["receiver_requests"] = requests
            result["exactly_once"] = (
                counts.get("delivered", 0) == counts["attempts"] == requests == events
            )
            result["complete"] = result["complete"] and result["exactly_once"]
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["complete"] = False
    finally:
        await tear_down(services, database, store, result)
    return result


def describe_drain(result: dict[str, Any]) -> None:
    if "error" in result:
        say(f"  !! {result['error']}")
    if "per_second_from_first_arrival" in result:
        say(
            f"  {result['arrived']:,} arrived in {result['drain_seconds']} s from the first: "
            f"{result['per_second_from_first_arrival']:,.0f}/s "
            f"({result['per_second_from_spawn']:,.0f}/s from the worker's spawn, first arrival "
            f"{result['first_arrival_after_spawn_seconds']} s after it); the worker used "
            f"{result.get('worker_cpu_seconds', 0)} CPU s, the machine was "
            f"{result['machine_busy']:.0%} busy"
        )
        say(
            "  cores used from the worker's spawn to the last arrival: "
            + ", ".join(f"{name} {used:.2f}" for name, used in result["cores_used"].items())
        )
        say(f"  arrivals per 5 s from the spawn: {result.get('arrivals_per_5_seconds')}")
    if "reads_idle" in result:
        idle, busy = result["reads_idle"], result["reads_during_drain"]
        say(
            f"  GET /v1/me/homework: idle {cell(idle)} ({idle['count']}), during the drain "
            f"{cell(busy)} ({busy['count']}, {busy['not_200']} not 200)"
        )
    if "deliveries" in result:
        say(
            f"  deliveries {result['deliveries']}, receiver requests "
            f"{result['receiver_requests']:,}: "
            + ("exactly once" if result["exactly_once"] else "MISMATCH")
        )
    for problem in result["log_problems"][:5]:
        say(f"  log: {problem}")


# --- The report ----------------------------------------------------------------------------------


def table(results: dict[str, Any], options: argparse.Namespace) -> str:
    conditions = results["conditions"]
    keys = [t.key for t in troubles(options)]
    labels = {t.key: t.label for t in troubles(options)}
    width = 34
    lines: list[str] = [describe_code(results["code_at_start"]), ""]

    def row(label: str, cells: Sequence[str], goal: str = "") -> None:
        lines.append(f"{label:<34}" + "".join(f"{c:<{width}}" for c in cells) + goal)

    def find(kind: str, key: str) -> dict[str, Any] | None:
        return next((c for c in conditions if c["backend"] == kind and c["condition"] == key), None)

    for figure, title, goal in (
        ("flags", "distress flag POST -> receiver", True),
        ("reminders", "reminder due_at -> receiver", False),
    ):
        if not results["backends"] or not keys:
            break
        heading = "goal" if goal else "goal: none set (the test allows 1.5 s)"
        row(f"{title}", [labels[k] for k in keys], heading)
        row("  p50 / p99 / max", [""] * len(keys))
        for kind in results["backends"]:
            found = [find(kind, k) for k in keys]
            figures = [c.get(figure, {}) if c else None for c in found]
            met = all(
                f
                and f.get("count")
                and not f.get("missing")
                and f["p99_ms"] < 1000 * FLAG_GOAL_SECONDS
                for f in figures
            )
            verdict = f"p99 < 1 s: {'met' if met else 'MISSED'}" if goal else ""
            row(f"  {BACKENDS[kind]}", [cell(f) for f in figures], verdict)
        lines.append("")
    drain = results.get("drain")
    if drain is not None:
        lines.append(
            f"backlog drain, {drain['events']:,} events, one `homework worker` (PostgreSQL)"
        )
        if "per_second_from_first_arrival" in drain:
            rate = drain["per_second_from_first_arrival"]
            lines.append(
                f"  deliveries/s                    {rate:,.0f}/s from the first arrival to the "
                f"last ({drain['per_second_from_spawn']:,.0f}/s from the worker's spawn)   "
                f"goal >= {DRAIN_GOAL_PER_SECOND:,.0f}/s: "
                f"{'met' if rate >= DRAIN_GOAL_PER_SECOND else 'MISSED'} "
                f"(the old worker: {DRAIN_BEFORE_PER_SECOND:,.0f}/s)"
            )
        else:
            lines.append(f"  deliveries/s                    failed: {drain.get('error', '')}")
        if "cores_used" in drain:
            lines.append(
                "  cores used meanwhile            "
                + ", ".join(f"{n} {u:.2f}" for n, u in drain["cores_used"].items())
                + f" (of {os.cpu_count()})"
            )
        if "reads_idle" in drain:
            idle, busy = drain["reads_idle"], drain["reads_during_drain"]
            lines.append(
                f"  API GET /v1/me/homework         during the drain {cell(busy)} "
                f"(p50 / p99 / max, {busy['count']} reads); idle {cell(idle)}"
            )
        if "deliveries" in drain:
            counts = drain["deliveries"]
            lines.append(
                f"  exactly once                    {counts.get('delivered', 0):,} delivered, "
                f"{counts['attempts']:,} attempts, {drain['receiver_requests']:,} requests "
                f"received: {'ok' if drain['exactly_once'] else 'MISMATCH'}"
            )
    return "\n".join(lines)


async def main(options: argparse.Namespace) -> int:
    admin_url = os.environ.get("HOMEWORK_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    backends = [
        kind
        for kind, skip in (("postgresql", options.skip_postgres), ("sqlite", options.skip_sqlite))
        if not skip
    ]
    admin = await asyncpg.connect(_dsn(admin_url))
    try:
        server = await admin.fetchval("SHOW server_version")
    finally:
        await admin.close()
    results: dict[str, Any] = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "postgresql": server,
        },
        "options": vars(options),
        "settings": {
            "webhook_timeout_seconds": WEBHOOK_TIMEOUT_SECONDS,
            "hang_receiver_sleeps_seconds": HANG_SECONDS,
            "slow_receiver_answers_in_seconds": list(SLOW_SECONDS),
        },
        "code_at_start": code_state(),
        "backends": backends,
        "conditions": [],
    }
    say(
        f"PostgreSQL {server}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}; webhook timeout {WEBHOOK_TIMEOUT_SECONDS:.0f} s, "
        "default caps (4 POSTs at once per endpoint, 16 per tenant, 64 per process)"
    )
    say(describe_code(results["code_at_start"]))
    root = Path(tempfile.mkdtemp(prefix="homework-isolation-"))
    ok = True
    try:
        for kind in backends:
            for trouble in troubles(options):
                say(f"\n{BACKENDS[kind]}, {trouble.label}")
                result = await run_condition(kind, trouble, options, admin_url, root)
                describe_condition(result)
                results["conditions"].append(result)
                ok = ok and result["complete"]
        if not options.skip_drain:
            say(f"\nbacklog drain: {options.events:,} events, then one `homework worker`")
            results["drain"] = await run_drain(options, admin_url, root)
            describe_drain(results["drain"])
            ok = ok and results["drain"]["complete"]
    finally:
        results["code_at_end"] = code_state()
        if results["code_at_end"] != results["code_at_start"]:
            say("\n!! app/ changed during the run: the figures mix two versions")
            say(describe_code(results["code_at_end"]))
        report = table(results, options)
        say("\n" + report)
        results["table"] = report.splitlines()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "worker_isolation.json").write_text(json.dumps(results, indent=2) + "\n")
        say(f"\nwrote {(RESULTS / 'worker_isolation.json').relative_to(ROOT)}")
        if ok and not options.keep_logs:
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"logs of every process kept in {root}")
    return 0 if ok else 1


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-postgres", action="store_true", help="no PostgreSQL conditions")
    parser.add_argument("--skip-sqlite", action="store_true", help="no SQLite conditions")
    parser.add_argument("--skip-drain", action="store_true", help="no backlog drain")
    parser.add_argument("--only", default="alone,hang,slow", help="conditions: alone,hang,slow")
    parser.add_argument("--flags", type=int, default=40, help="distress flags per condition")
    parser.add_argument("--flag-interval", type=float, default=0.2, help="seconds between flags")
    parser.add_argument("--reminders", type=int, default=40, help="reminders per condition")
    parser.add_argument(
        "--reminder-spread", type=float, default=15.0, help="seconds the reminders come due over"
    )
    parser.add_argument("--hang-backlog", type=int, default=300, help="the hanging tenant's")
    parser.add_argument("--slow-backlog", type=int, default=1500, help="the slow tenant's")
    parser.add_argument("--events", type=int, default=20_000, help="the drain's backlog")
    parser.add_argument("--read-rate", type=float, default=50.0, help="API reads a second")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle reads before")
    parser.add_argument("--keep-logs", action="store_true", help="keep every process's log")
    parser.add_argument(
        "--profile-worker",
        action="store_true",
        help="py-spy the drain's worker into bench/results/profiles/worker_drain.txt",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    run()
