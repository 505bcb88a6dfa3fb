"""The API under load, side by side with its ceiling.

    .venv/bin/python -m bench.load [--duration 15] [--warmup 3] [--connections 32]
                                   [--no-profile] [--keep-db | --reuse-db] [--only a,b,...]

One command, nothing installed by hand:
1. installs the load generator if it is missing (`apt-get install -y wrk`);
2. drops and recreates the database `homework_bench` next to HOMEWORK_TEST_POSTGRES_URL's
   (default postgresql+asyncpg://postgres@127.0.0.1:5432/test), migrates it with
   `app.core.migrations.upgrade`, creates a tenant with `homework tenants create` and seeds a
   realistic one with set-based SQL (bench/seed_load.py), then VACUUM ANALYZE;
3. starts the service (`homework serve --no-migrate`, one uvicorn worker, in a temporary working
   directory, its pool sized to the concurrency with no overflow) and the ceiling
   (bench/ceiling.py: a bare Starlette app on an asyncpg pool of the same size, one worker, the
   same SQL), and waits for both to be ready;
4. gets real tokens from the service's POST /oauth/token (RFC 8693 token exchange with the
   tenant's OAuth client); the completion scenario needs one per client, which are minted with
   the service's own TokenService and the development signing key it wrote on first start;
5. drives each scenario at a fixed concurrency, a warm-up then a measured run, first against the
   service, then against the ceiling, and prints requests per second, p50 and p99 and the ratio
   ours/ceiling; the results go to bench/results/latest.json;
6. then (unless --no-profile) profiles the service under the same load with py-spy (installed
   with pip into a temporary directory), summarises where its CPU time goes per scenario, and
   writes the EXPLAIN (ANALYZE, BUFFERS) of every scenario's statements next to the results.

The scenarios:
  a  GET /v1/me/homework                       a client's today (client token)
  b  GET /v1/assignments/{id}                  one assignment with its occurrences (clinician)
  c  GET /v1/assignments?client_id=...         the first page of a client's assignments
  d  POST /v1/completions                      a client completes an open occurrence; each
                                               request a distinct one, with an Idempotency-Key
  e  GET /v1/clinicians/{id}/caseload          the caseload of a clinician with 40 clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.core.config import RATE_LIMIT_NAMES
from bench import seed_load

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "load_wrk.lua"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DATABASE = "homework_bench"
WRK_THREADS = 2
TOKEN_TTL_SECONDS = 7200
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
# What --keep-db leaves for --reuse-db: the tenant's credentials and the seeded ids.
REUSE_STATE = Path(tempfile.gettempdir()) / "homework-bench-seeded.json"

SCENARIOS = {
    "a": "GET /v1/me/homework",
    "b": "GET /v1/assignments/{id}",
    "c": "GET /v1/assignments?client_id=",
    "d": "POST /v1/completions",
    "e": "GET /v1/clinicians/{id}/caseload",
}
TARGETS = {"reads_rps_ratio": 0.6, "write_rps_ratio": 0.7, "p99_ms": 50.0}


def say(message: str = "") -> None:
    print(message, flush=True)


# --- The load generator --------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: installing it with apt-get (Debian's package)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        # `hey` cannot vary the body per request, which the completion scenario needs, nor
        # report p50/p99 through a script: this harness is built on wrk and says so.
        raise SystemExit("wrk could not be installed (apt-get install -y wrk); nothing to drive")
    return found


# --- The database --------------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


async def recreate_database(admin_url: str, database: str = DATABASE) -> str:
    admin = await asyncpg.connect(_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    return make_url(admin_url).set(database=database).render_as_string(False)


async def drop_database(admin_url: str, database: str = DATABASE) -> None:
    admin = await asyncpg.connect(_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


async def migrate(url: str) -> None:
    from app.core import migrations
    from app.core.config import Environment, Settings

    settings = Settings(_env_file=None, env=Environment.development, database_url=url)  # type: ignore[call-arg]
    await migrations.upgrade(settings)


def create_tenant(url: str) -> dict[str, str]:
    env = dict(os.environ, HOMEWORK_DATABASE_URL=url, HOMEWORK_LOG_LEVEL="WARNING")
    out = subprocess.run(
        [str(VENV_BIN / "homework"), "tenants", "create", "Bench Telehealth"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


# --- The two servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "server.log").read_text()[-3000:]
                raise SystemExit(f"{self.name} exited ({self.process.returncode}):\n{log}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} was not ready in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(url: str, pool_size: int, workdir: Path) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "HOMEWORK_DATABASE_URL": url,
        "HOMEWORK_LOG_LEVEL": "WARNING",
        "HOMEWORK_ENV": "development",
        "HOMEWORK_DB_POOL_SIZE": str(pool_size),
        "HOMEWORK_DB_MAX_OVERFLOW": "0",
        # The run lasts longer than the default 15 minutes of a user token.
        "HOMEWORK_USER_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS),
        # One tenant sends the whole load: its quotas are raised (every request is still
        # counted, as in production; bench.rate_limit_cost measures what that costs).
        **{f"HOMEWORK_RATE_LIMIT_{name.upper()}": "10000000/minute" for name in RATE_LIMIT_NAMES},
    }
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "homework"), "serve", "--no-migrate", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Server("the service", process, port, workdir)


def start_ceiling(url: str, pool_size: int, workdir: Path) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "CEILING_DSN": _dsn(url),
        "CEILING_POOL_SIZE": str(pool_size),
        "PYTHONPATH": str(ROOT),
    }
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.ceiling:app",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Server("the ceiling", process, port, workdir)


# --- Tokens --------------------------------------------------------------------------------------


def exchange_token(base: str, credentials: dict[str, str], kind: str, subject_id: str) -> str:
    return post_token(
        base,
        {
            "grant_type": TOKEN_EXCHANGE,
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "subject_token": subject_id,
            "subject_token_type": f"urn:homework:token-type:{kind}-id",
        },
    )


def post_token(base: str, form: dict[str, str]) -> str:
    """The access token the service's `POST /oauth/token` answers `form` with."""
    request = urllib.request.Request(
        f"{base}/oauth/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]  # type: ignore[no-any-return]


def token_minter(workdir: Path, credentials: dict[str, str]) -> Any:
    """The service's own TokenService with the development key it generated in `workdir`."""
    from app.core.config import Environment, Settings
    from app.core.keys import KeyRing
    from app.core.scopes import ROLE_SCOPES, Context
    from app.core.tokens import TokenService

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env=Environment.development,
        dev_signing_key_path=workdir / ".homework" / "signing-keys.json",
    )

    async def no_issuer(_issuer: str) -> None:
        return None

    service = TokenService(settings, KeyRing.from_settings(settings), no_issuer)

    def mint(client_id: str) -> str:
        token, _ = service.issue(
            tenant_id=credentials["tenant_id"],
            kind=Context.client,
            subject=client_id,
            client_id=credentials["client_id"],
            scopes=ROLE_SCOPES[Context.client],
            ttl_seconds=TOKEN_TTL_SECONDS,
        )
        return token

    return mint


# --- The completion scenario's bodies ------------------------------------------------------------

ANSWERS: dict[str, dict[str, Any]] = {
    "mood_log": {"mood": 6, "emotions": ["calm", "tired"], "note": "Walked at lunch"},
    "thought_record": {
        "situation": "Team meeting",
        "automatic_thought": "They think I am slow",
        "emotion": "anxious",
        "emotion_intensity": 70,
        "alternative_thought": "Nobody said so; I finished on time",
        "intensity_after": 40,
    },
    "activity_schedule": {
        "activity": "Short walk",
        "planned": True,
        "done": True,
        "mastery": 6,
        "pleasure": 7,
    },
    "exposure": {
        "step": "Take the bus two stops",
        "suds_before": 55,
        "suds_peak": 80,
        "suds_after": 30,
        "duration_minutes": 25,
    },
    "mindfulness": {"practice": "Breathing space", "minutes": 5, "attention": 6},
    "journal": {"entries": [{"good_thing": "Lunch with Sam", "why": "I asked"}]},
    "skill_practice": {"skill": "5-4-3-2-1 grounding", "confidence": 7},
    "reading": {"material": "Chapter 3", "key_takeaway": "Avoidance keeps fear going"},
    "phq9": {f"item_{n}": 1 for n in range(1, 9)} | {"item_9": 0},
    "gad7": {f"item_{n}": 1 for n in range(1, 8)},
}


def completion_body(occurrence_id: str, kind: str, time_zone: str) -> str:
    return json.dumps(
        {
            "occurrence_id": occurrence_id,
            "status": "done",
            "answers": ANSWERS[kind],
            "helpfulness": 7,
            "effort": 4,
            "minutes_spent": 10,
            "time_zone": time_zone,
        },
        separators=(",", ":"),
    )


async def completion_pool(url: str, excluded_clients: list[str]) -> list[tuple[str, str, str, str]]:
    """(occurrence id, client id, kind, zone) of every open or upcoming occurrence without a
    completion, shuffled; the scenario clients' own are left out so the reads do not change."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        rows = await connection.fetch(
            """SELECT o.id, o.client_id, a.kind, o.time_zone
               FROM occurrences AS o JOIN assignments AS a ON a.id = o.assignment_id
               WHERE o.status IN ('open', 'upcoming') AND a.status = 'active'
                 AND NOT (o.client_id = ANY($1::text[]))
                 AND NOT EXISTS (SELECT 1 FROM completions AS c WHERE c.occurrence_id = o.id)
               ORDER BY md5(o.id)""",
            excluded_clients,
        )
    finally:
        await connection.close()
    return [(r["id"], r["client_id"], r["kind"], r["time_zone"]) for r in rows]


# --- Driving -------------------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int] = field(default_factory=dict)
    wrapped: int = 0
    server_cpu: float = 0.0
    """CPU seconds per wall second of the server process (1.0 = one core, all the time)."""
    postgres_cpu: float = 0.0
    """The same for the PostgreSQL backends of the benchmark database."""
    machine_busy: float = 0.0
    """Share of both cores busy during the run, anyone's (other work on the machine shows)."""
    wrk_cpu: float = 0.0
    other_cpu: float = 0.0
    """Cores busy with anything else than the server, its PostgreSQL backends and wrk."""
    server_cpu_ms_per_request: float = 0.0
    postgres_cpu_ms_per_request: float = 0.0


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_ticks() -> tuple[int, int]:
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts), idle


def _backend_pids(dsn: str) -> list[int]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, asyncpg, sys\n"
            "async def m():\n"
            "    c = await asyncpg.connect(sys.argv[1])\n"
            "    rows = await c.fetch('SELECT pid FROM pg_stat_activity WHERE datname = $1 "
            "AND pid <> pg_backend_pid()', sys.argv[2])\n"
            "    print(' '.join(str(r[0]) for r in rows))\n"
            "    await c.close()\n"
            "asyncio.run(m())",
            dsn,
            str(make_url(dsn).database),  # the backends serving the benchmark's database
        ],
        capture_output=True,
        text=True,
    )
    return [int(p) for p in out.stdout.split()]


def drive(
    wrk: str,
    base: str,
    lines: Path,
    mode: str,
    run_id: str,
    seconds: int,
    connections: int,
    server_pid: int,
    dsn: str,
) -> Run:
    env = dict(os.environ, LOAD_COUNT_STATUSES="1" if mode == "stream" else "0")
    command = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base,
        "--",
        str(lines),
        mode,
        run_id,
    ]
    backends = _backend_pids(dsn)
    cpu_before = _proc_cpu(server_pid), sum(_proc_cpu(p) for p in backends), _machine_ticks()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / wall
    total, idle = _machine_ticks()
    server_cpu = (_proc_cpu(server_pid) - cpu_before[0]) / wall
    postgres_cpu = (sum(_proc_cpu(p) for p in backends) - cpu_before[1]) / wall
    busy = 1 - (idle - cpu_before[2][1]) / max(1, total - cpu_before[2][0])
    result_line = next(
        (line for line in out.stdout.splitlines() if line.startswith("LOAD_RESULT ")), None
    )
    if result_line is None:
        raise SystemExit(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(result_line.removeprefix("LOAD_RESULT "))
    duration = data["duration_us"] / 1e6
    latency = data["latency_us"]
    errors = data["errors"]
    statuses = {str(k): v for k, v in data["statuses"].items()}
    return Run(
        requests=data["requests"],
        seconds=round(duration, 2),
        rps=round(data["requests"] / duration, 1),
        p50_ms=round(latency["p50"] / 1000, 2),
        p90_ms=round(latency["p90"] / 1000, 2),
        p99_ms=round(latency["p99"] / 1000, 2),
        max_ms=round(latency["max"] / 1000, 2),
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        statuses=statuses,
        wrapped=data["wrapped"],
        server_cpu=round(server_cpu, 2),
        postgres_cpu=round(postgres_cpu, 2),
        machine_busy=round(busy, 2),
        wrk_cpu=round(wrk_cpu, 2),
        other_cpu=round(
            max(0.0, busy * (os.cpu_count() or 1) - server_cpu - postgres_cpu - wrk_cpu), 2
        ),
        server_cpu_ms_per_request=round(1000 * server_cpu * wall / max(1, data["requests"]), 3),
        postgres_cpu_ms_per_request=round(1000 * postgres_cpu * wall / max(1, data["requests"]), 3),
    )


def check_same_shape(ours: Any, ceiling: Any, path: str = "$") -> list[str]:
    """Where the two JSON documents differ in shape (keys, types, list emptiness)."""
    if isinstance(ours, dict) and isinstance(ceiling, dict):
        problems = (
            [f"{path}: keys differ {sorted(set(ours) ^ set(ceiling))}"]
            if set(ours) != set(ceiling)
            else []
        )
        for key in set(ours) & set(ceiling):
            problems += check_same_shape(ours[key], ceiling[key], f"{path}.{key}")
        return problems
    if isinstance(ours, list) and isinstance(ceiling, list):
        if len(ours) != len(ceiling):
            return [f"{path}: {len(ours)} items against {len(ceiling)}"]
        return [p for a, b in zip(ours, ceiling, strict=True) for p in check_same_shape(a, b, path)]
    if ours is None or ceiling is None or type(ours) is type(ceiling):
        return []
    if isinstance(ours, int | float) and isinstance(ceiling, int | float):
        return []
    return [f"{path}: {type(ours).__name__} against {type(ceiling).__name__}"]


def fetch(base: str, method: str, path: str, token: str, body: str | None, key: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers |= {"Content-Type": "application/json", "Idempotency-Key": key}
    request = urllib.request.Request(
        base + path, data=body.encode() if body else None, headers=headers, method=method
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


# --- Profiles and plans --------------------------------------------------------------------------

# Where the service's CPU goes, two ways.
# 1. On whose behalf: a sample counts for an operation when any frame of its stack is that
#    operation (so these overlap: the audit INSERT's SQLAlchemy time counts for both "audit"
#    and "ORM flush" if it flushed).
OPERATIONS: list[tuple[str, tuple[str, ...]]] = [
    ("JWT verification (TokenService.verify)", ("verify (app/core/tokens.py",)),
    ("pool checkout (incl. pre-ping)", ("_checkout (sqlalchemy/pool/base.py",)),
    ("  of which pre-ping (BEGIN; ';'; ROLLBACK)", ("_do_ping", "ping (sqlalchemy/dialects")),
    ("BEGIN (SQLAlchemy asyncpg adapter)", ("_start_transaction (sqlalchemy",)),
    ("COMMIT (session commit)", ("commit (sqlalchemy/ext/asyncio/session.py",)),
    ("audit INSERTs (audit.record)", ("record (app/services/audit.py",)),
    ("Idempotency-Key claim and store", ("(app/core/idempotency.py",)),
    ("ORM flush (unit of work)", ("flush (sqlalchemy/orm/session.py",)),
    ("ORM rows -> objects (orm/loading.py)", ("(sqlalchemy/orm/loading.py",)),
    ("SQL compilation and cache keys", ("(sqlalchemy/sql/compiler.py", "cache_key")),
    ("request validation (params, body)", ("request_params_to_args", "request_body_to_args")),
    ("response: routers' *_out + pydantic models", ("_out (app/routers", "Homework (app/routers")),
    ("response: FastAPI serialize_response", ("serialize_response (fastapi",)),
    ("access log / logging", ("(logging/",)),
]
# 2. Where it is spent: each sample once, by the package of its innermost frame.
PLACES: list[tuple[str, tuple[str, ...]]] = [
    ("asyncpg (driver)", ("(asyncpg/",)),
    ("SQLAlchemy asyncpg adapter", ("(sqlalchemy/dialects/",)),
    ("SQLAlchemy ORM", ("(sqlalchemy/orm/",)),
    ("SQLAlchemy Core (sql/)", ("(sqlalchemy/sql/",)),
    ("SQLAlchemy engine, pool, util, event", ("(sqlalchemy/",)),
    ("pydantic", ("(pydantic",)),
    ("python-jose / cryptography / ecdsa", ("(jose/", "(cryptography/", "(ecdsa/")),
    ("FastAPI", ("(fastapi/",)),
    ("Starlette", ("(starlette/",)),
    ("uvicorn / httptools", ("(uvicorn/", "(httptools/")),
    ("the service's own code (app/)", ("(app/",)),
    ("json (stdlib)", ("(json/",)),
    ("logging (stdlib)", ("(logging/",)),
    ("asyncio / uvloop", ("(asyncio/", "(uvloop/")),
]


def ensure_py_spy(cache: Path) -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    target = cache / "py-spy"
    binary = target / "bin" / "py-spy"
    if not binary.exists():
        say("py-spy is missing: installing it with pip into a temporary directory")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "py-spy"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not binary.exists():
            say(f"  could not install py-spy: {result.stderr.strip()[-300:]}")
            return None
    return str(binary)


def summarise_profile(raw: Path) -> dict[str, Any]:
    samples = 0
    operations: Counter[str] = Counter()
    places: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        for name, needles in OPERATIONS:
            if any(needle in frame for frame in frames for needle in needles):
                operations[name] += count
        innermost = frames[-1]
        place = next(
            (name for name, needles in PLACES if any(n in innermost for n in needles)),
            "other (stdlib, C extensions)",
        )
        places[place] += count
        leaf[_short(innermost)] += count

    def share(n: int) -> float:
        return round(100 * n / samples, 1) if samples else 0.0

    return {
        "samples": samples,
        "operations": {name: share(operations[name]) for name, _ in OPERATIONS},
        "places": {name: share(n) for name, n in places.most_common()},
        "top_self": [(name, share(n)) for name, n in leaf.most_common(15)],
    }


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where.rsplit(':', 1)[0]})"


async def explain_all(
    url: str, scenario_params: dict[str, list[tuple[str, str, tuple[Any, ...]]]]
) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement of every scenario, in a transaction that is
    rolled back (the plans of the writes are real, their effects are not kept)."""
    connection = await asyncpg.connect(_dsn(url))
    out = []
    try:
        for scenario, statements in scenario_params.items():
            out.append(f"=== ({scenario}) {SCENARIOS[scenario]}")
            for label, sql, params in statements:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params)
                finally:
                    await transaction.rollback()
                out.append(f"--- {label}")
                out.extend(r[0] for r in rows)
                out.append("")
    finally:
        await connection.close()
    return "\n".join(out)


def explain_statements(
    credentials: dict[str, str], seeded: seed_load.Seeded, occurrence: tuple[str, str, str, str]
) -> dict[str, list[tuple[str, str, tuple[Any, ...]]]]:
    """Every statement the scenarios send that reads or filters, and the Idempotency-Key claim
    (not the plain INSERT ... VALUES of the completion, its revision, events and audit rows, nor
    the assignment's end, which the bench's completions rarely reach), as the ceiling sends
    them: the service's own `Statement`s, with their parameters in their order."""
    from datetime import timedelta

    from app.core.scopes import Context
    from bench import ceiling as c

    tenant = credentials["tenant_id"]
    client = seeded.homework_client_id
    clinician = seeded.clinician_id
    caseload = seeded.caseload_clinician_id
    assignment = seeded.clinician_assignment_ids[-1]
    now = datetime.now(UTC)
    day = timedelta(days=1)
    occ_id, occ_client, _, _ = occurrence

    def of(statement: Any, **params: Any) -> tuple[str, tuple[Any, ...]]:
        return statement.sql, tuple(c.args(statement, **params))

    as_clinician = {"tenant_id": tenant, "subject_id": clinician}
    on_caseload = {"tenant_id": tenant, "subject_id": caseload, "clinician_id": caseload}
    caller_key = f"{tenant}:client:{occ_client}"
    return {
        "a": [
            ("the client", *of(c.CLIENT, client_id=client, tenant_id=tenant)),
            (
                "today's occurrences, with their assignment and template version",
                *of(c.HOMEWORK_TODAY, client_id=client, day_start=now - day, day_end=now + day),
            ),
        ],
        "b": [
            (
                "the assignment, if visible",
                *of(
                    c.VISIBLE_ASSIGNMENT[Context.clinician],
                    **as_clinician,
                    assignment_id=assignment,
                ),
            ),
            ("its occurrences", *of(c.OCCURRENCES_OF_ASSIGNMENT, assignment_id=assignment)),
        ],
        "c": [
            (
                "the first page",
                *of(
                    c.VISIBLE_ASSIGNMENTS_OF_CLIENT[Context.clinician],
                    **as_clinician,
                    client_id=seeded.clinician_client_ids[0],
                    limit=51,
                ),
            ),
        ],
        "d": [
            (
                "the Idempotency-Key claimed",
                *of(
                    c.CLAIM_IDEMPOTENCY_KEY,
                    claimant=caller_key,
                    claimed_key="explain",
                    digest="0" * 64,
                    now=now,
                    expires_at=now + day,
                ),
            ),
            (
                "the occurrence, locked, with its assignment, template version and client",
                *of(
                    c.LOCKED_OCCURRENCE[Context.client],
                    occurrence_id=occ_id,
                    tenant_id=tenant,
                    subject_id=occ_client,
                ),
            ),
            (
                "the occurrence moved",
                *of(c.MOVE_OCCURRENCE, occurrence_id=occ_id, status="completed", now=now),
            ),
            (
                "reminders cancelled",
                *of(c.CANCEL_REMINDERS, of=occ_id, reason="resolved", now=now),
            ),
            (
                "the series' resolution (of scenario b's assignment)",
                *of(c.SERIES_RESOLUTION, assignment_id=assignment),
            ),
            (
                "the response stored",
                *of(
                    c.STORE_IDEMPOTENT_RESPONSE,
                    claimant=caller_key,
                    claimed_key="explain",
                    status=201,
                    body=b"{}",
                    headers={},
                ),
            ),
        ],
        "e": [
            (
                "the clinician, if visible",
                *of(c.VISIBLE_CLINICIAN[Context.clinician], **on_caseload),
            ),
            (
                "clients, their last work done, open flags and helpfulness",
                *of(
                    c.CASELOAD_CLIENTS[Context.clinician],
                    **on_caseload,
                    recent_from=now - 7 * day,
                    previous_from=now - 14 * day,
                ),
            ),
            (
                "28-day rates and missed runs",
                *of(
                    c.CASELOAD_OCCURRENCES[Context.clinician],
                    **on_caseload,
                    now=now,
                    since=now - 28 * day,
                ),
            ),
        ],
    }


# --- The run -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


def table(results: dict[str, dict[str, Run]]) -> str:
    header = (
        f"{'scenario':<34} {'ours rps':>9} {'ceil rps':>9} {'ratio':>6}  "
        f"{'ours p50':>8} {'ceil p50':>8}  {'ours p99':>8} {'ceil p99':>8} {'ratio':>6}  "
        f"{'CPU ms/req ours':>15} {'ceil':>5}  {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for key, runs in results.items():
        ours, ceiling = runs["ours"], runs["ceiling"]
        errors = ours.non_2xx + ours.socket_errors
        lines.append(
            f"{key}  {SCENARIOS[key]:<31} {ours.rps:>9.0f} {ceiling.rps:>9.0f} "
            f"{ours.rps / ceiling.rps:>6.2f}  {ours.p50_ms:>6.1f}ms {ceiling.p50_ms:>6.1f}ms  "
            f"{ours.p99_ms:>6.1f}ms {ceiling.p99_ms:>6.1f}ms {ours.p99_ms / ceiling.p99_ms:>6.2f}  "
            f"{ours.server_cpu_ms_per_request:>15.2f} {ceiling.server_cpu_ms_per_request:>5.2f}  "
            f"{errors:>6}"
        )
    return "\n".join(lines)


async def main(arguments: argparse.Namespace) -> int:
    started = time.monotonic()
    only = [s for s in arguments.only.split(",") if s] if arguments.only else list(SCENARIOS)
    connections = arguments.connections
    wrk = ensure_wrk()
    admin_url = os.environ.get("HOMEWORK_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    info = machine()
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Python "
        f"{info['python']}, load average {info['loadavg_at_start'][0]:.2f}"
    )

    now = datetime.now(UTC)
    if arguments.reuse_db and REUSE_STATE.exists():
        say(f"\n1. database {DATABASE}: reused as a previous --keep-db run left it, migrated")
        url = make_url(admin_url).set(database=DATABASE).render_as_string(False)
        state = json.loads(REUSE_STATE.read_text())
        credentials, seeded = state["credentials"], seed_load.Seeded(**state["seeded"])
        await migrate(url)
    else:
        say(f"\n1. database {DATABASE}: recreate, migrate, seed")
        url = await recreate_database(admin_url)
        await migrate(url)
        credentials = create_tenant(url)
        seeded = await seed_load.seed(_dsn(url), credentials["tenant_id"], now, say)
        REUSE_STATE.write_text(json.dumps({"credentials": credentials, "seeded": asdict(seeded)}))
    dsn = _dsn(url)
    connection = await asyncpg.connect(dsn)
    info["postgresql"] = await connection.fetchval("SHOW server_version")
    info["postgresql_settings"] = {
        r["name"]: r["value"]
        for r in await connection.fetch(
            "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name IN "
            "('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'jit', "
            "'work_mem')"
        )
    }
    await connection.close()
    say(
        f"   seeded in {seeded.seconds:.0f} s: "
        + ", ".join(f"{n:,} {t}" for t, n in seeded.counts.items())
    )
    say(f"   the homework client has {seeded.homework_items} items in its local day")

    workdir = Path(tempfile.mkdtemp(prefix="homework-bench-"))
    service_dir, ceiling_dir = workdir / "service", workdir / "ceiling"
    service_dir.mkdir()
    ceiling_dir.mkdir()
    service = start_service(url, connections, service_dir)
    ceiling = start_ceiling(url, connections, ceiling_dir)
    results: dict[str, dict[str, Run]] = {}
    profiles: dict[str, Any] = {}
    try:
        service.wait_ready()
        ceiling.wait_ready()
        say(f"\n2. the service on :{service.port} (pid {service.process.pid}), the ceiling on "
            f":{ceiling.port} (pid {ceiling.process.pid}); pools of {connections}")  # fmt: skip

        base = service.base
        client_token = exchange_token(base, credentials, "client", seeded.homework_client_id)
        clinician_token = exchange_token(base, credentials, "clinician", seeded.clinician_id)
        caseload_token = exchange_token(
            base, credentials, "clinician", seeded.caseload_clinician_id
        )
        mint = token_minter(service_dir, credentials)

        lines_dir = workdir / "lines"
        lines_dir.mkdir()
        read_lines = {
            "a": [("GET", "/v1/me/homework", client_token)],
            "b": [
                ("GET", f"/v1/assignments/{a}", clinician_token)
                for a in seeded.clinician_assignment_ids
            ],
            "c": [
                ("GET", f"/v1/assignments?client_id={c}", clinician_token)
                for c in seeded.clinician_client_ids
            ],
            "e": [
                (
                    "GET",
                    f"/v1/clinicians/{seeded.caseload_clinician_id}/caseload",
                    caseload_token,
                )
            ],
        }
        for key, rows in read_lines.items():
            (lines_dir / f"{key}.txt").write_text("".join("\t".join(r) + "\t\n" for r in rows))

        excluded = [seeded.homework_client_id, *seeded.clinician_client_ids]
        pool = await completion_pool(url, excluded)
        say(f"   completion pool: {len(pool):,} open or upcoming occurrences without a completion")
        tokens: dict[str, str] = {}

        def completion_lines(name: str, count: int) -> Path:
            taken = [pool.pop() for _ in range(min(count, len(pool)))]
            if not taken:
                raise SystemExit("the completion pool is exhausted")
            path = lines_dir / f"d-{name}.txt"
            for thread in range(WRK_THREADS):
                with open(f"{path}.{thread}", "w") as f:
                    for occurrence_id, client_id, kind, zone in taken[thread::WRK_THREADS]:
                        token = tokens.get(client_id) or tokens.setdefault(
                            client_id, mint(client_id)
                        )
                        body = completion_body(occurrence_id, kind, zone)
                        f.write(f"POST\t/v1/completions\t{token}\t{body}\n")
            return path

        # One request of each scenario on both, to see that they answer alike.
        say("\n3. one request of each scenario against both: same status, same JSON shape")
        explain_occurrence = pool[0]
        for key in only:
            if key == "d":
                first = pool.pop()
                twin = next(i for i in range(len(pool) - 1, -1, -1) if pool[i][2] == first[2])
                sample = [first, pool.pop(twin)]
                checks = []
                for server, (occurrence_id, client_id, kind, zone) in zip(
                    (service, ceiling), sample, strict=True
                ):
                    body = completion_body(occurrence_id, kind, zone)
                    checks.append(
                        fetch(
                            server.base,
                            "POST",
                            "/v1/completions",
                            mint(client_id),
                            body,
                            f"check-{occurrence_id}",
                        )
                    )
            else:
                method, path, token = read_lines[key][0]
                checks = [fetch(s.base, method, path, token, None, "") for s in (service, ceiling)]
            (status_ours, body_ours), (status_ceiling, body_ceiling) = checks
            problems = check_same_shape(body_ours, body_ceiling)
            if status_ours != status_ceiling:
                problems.insert(0, f"status {status_ours} against {status_ceiling}")
            verdict = "same shape" if not problems else "DIFFERENT: " + "; ".join(problems[:4])
            say(f"   ({key}) {SCENARIOS[key]:<34} {status_ours}  {verdict}")

        say(
            f"\n4. load: {connections} connections, {WRK_THREADS} wrk threads, "
            f"{arguments.warmup} s warm-up then {arguments.duration} s measured, per target"
        )
        for key in only:
            results[key] = {}
            for name, server in (("ours", service), ("ceiling", ceiling)):
                if key == "d":
                    if name == "ours":
                        # A generous guess of the service's rate; what it does not use is left.
                        warm = completion_lines("ours-warm", 1500 * arguments.warmup)
                        measured = completion_lines("ours-run", 1500 * arguments.duration)
                    else:
                        # The profile's run needs about the service's rate for 12 s; the ceiling
                        # gets the rest of the pool, shared between its warm-up and its run.
                        reserve = int(results["d"]["ours"].rps * 14) + 1000
                        left = max(0, len(pool) - reserve)
                        share = arguments.warmup / (arguments.warmup + arguments.duration)
                        warm = completion_lines("ceiling-warm", int(left * share))
                        measured = completion_lines("ceiling-run", left - int(left * share))
                    mode = "stream"
                else:
                    warm = measured = lines_dir / f"{key}.txt"
                    mode = "cycle"
                run_id = f"{name}-{key}-{int(time.time())}"
                pid = server.process.pid
                drive(
                    wrk,
                    server.base,
                    warm,
                    mode,
                    run_id + "-w",
                    arguments.warmup,
                    connections,
                    pid,
                    dsn,
                )
                run = drive(
                    wrk,
                    server.base,
                    measured,
                    mode,
                    run_id,
                    arguments.duration,
                    connections,
                    pid,
                    dsn,
                )
                results[key][name] = run
                say(
                    f"   ({key}) {name:<7} {run.rps:>7.0f} rps  p50 {run.p50_ms:>6.1f} ms  "
                    f"p99 {run.p99_ms:>6.1f} ms  non-2xx {run.non_2xx}  CPU ms/request: server "
                    f"{run.server_cpu_ms_per_request:.2f}, postgres "
                    f"{run.postgres_cpu_ms_per_request:.2f}  cores: server {run.server_cpu:.2f}, "
                    f"postgres {run.postgres_cpu:.2f}, wrk {run.wrk_cpu:.2f}, others "
                    f"{run.other_cpu:.2f}" + (f"  statuses {run.statuses}" if run.statuses else "")
                )

        say("\n" + table(results))

        if not arguments.no_profile:
            say("\n5. profiles of the service under the same load (py-spy, 100 samples/s)")
            spy = ensure_py_spy(Path(tempfile.gettempdir()) / "homework-bench-tools")
            if spy:
                for key in only:
                    raw = workdir / f"profile-{key}.txt"
                    if key == "d":
                        lines, mode = completion_lines("profile", len(pool)), "stream"
                    else:
                        lines, mode = lines_dir / f"{key}.txt", "cycle"
                    recorder = subprocess.Popen(  # noqa: ASYNC220 (a profiler beside the load)
                        [spy, "record", "--pid", str(service.process.pid), "--duration", "10",
                         "--rate", "100", "--format", "raw", "--nonblocking", "-o", str(raw)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    )  # fmt: skip
                    drive(wrk, service.base, lines, mode, f"profile-{key}-{int(time.time())}",
                          12, connections, service.process.pid, dsn)  # fmt: skip
                    recorder.wait(30)
                    if raw.exists():
                        profiles[key] = summarise_profile(raw)
                        (RESULTS / "profiles").mkdir(parents=True, exist_ok=True)
                        shutil.copy(raw, RESULTS / "profiles" / f"{key}.collapsed.txt")
                        summary = profiles[key]
                        say(
                            f"   ({key}) {summary['samples']} samples; where: "
                            + ", ".join(f"{n} {v}%" for n, v in list(summary["places"].items())[:6])
                        )
                        say(
                            "       for: "
                            + ", ".join(
                                f"{n.strip()} {v}%"
                                for n, v in summary["operations"].items()
                                if v >= 3
                            )
                        )
                    else:
                        why = recorder.stderr.read().decode()[-300:] if recorder.stderr else ""
                        say(f"   ({key}) py-spy wrote nothing: {why}")

            say("\n6. EXPLAIN (ANALYZE, BUFFERS) of every scenario's statements")
            plans = await explain_all(
                url, explain_statements(credentials, seeded, explain_occurrence)
            )
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "explain.txt").write_text(plans)
            plan_lines = [line.strip() for line in plans.splitlines()]
            seq_scans = [line for line in plan_lines if "Seq Scan" in line]
            jit = any(line.startswith("JIT:") for line in plan_lines)
            say(f"   written to bench/results/explain.txt; sequential scans: {len(seq_scans)}"
                + (" (" + "; ".join(seq_scans[:5]) + ")" if seq_scans else "")
                + ("; JIT was used" if jit else "; no JIT"))  # fmt: skip
    finally:
        service.stop()
        ceiling.stop()
        if not (arguments.keep_db or arguments.reuse_db):
            await drop_database(admin_url)
            REUSE_STATE.unlink(missing_ok=True)

    elapsed = time.monotonic() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "when": now.isoformat(),
        "command": "python -m bench.load " + " ".join(sys.argv[1:]),
        "machine": info,
        "settings": {
            "connections": connections,
            "wrk_threads": WRK_THREADS,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "service_pool": {"size": connections, "max_overflow": 0},
            "ceiling_pool": {"min": connections, "max": connections},
        },
        "seed": {"seconds": round(seeded.seconds, 1), "rows": seeded.counts},
        "scenarios": {
            key: {
                "name": SCENARIOS[key],
                "ours": asdict(runs["ours"]),
                "ceiling": asdict(runs["ceiling"]),
                "rps_ratio": round(runs["ours"].rps / runs["ceiling"].rps, 3),
                "p99_ratio": round(runs["ours"].p99_ms / runs["ceiling"].p99_ms, 3),
            }
            for key, runs in results.items()
        },
        "targets": TARGETS,
        "profiles": profiles,
        "total_seconds": round(elapsed),
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    say(f"\nresults: bench/results/latest.json; the whole run took {elapsed / 60:.1f} minutes")
    return 0


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", default="", help="scenarios to run, e.g. a,d")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy and EXPLAIN")
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DATABASE} afterwards")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help=f"reuse (and keep) the {DATABASE} a --keep-db run left, instead of seeding again",
    )
    random.seed(1)
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    run()
