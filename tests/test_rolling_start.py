"""Rolling starts: any number of processes may start together on one database, and migrate it.

Migrations run under a lock (a PostgreSQL advisory lock, a file lock beside a SQLite file):
replicas of `homework serve` started at once, concurrent `homework migrate upgrade` jobs, and
the built-in data's upsert take turns, and only the first does any work. `/readyz` answers 503
until the schema is at head, read anew on every probe.
"""

from __future__ import annotations

import asyncio
import fcntl
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.config import Environment, Settings
from app.core.db import create_engine
from app.models import Template
from app.services.template_catalog import BUILTIN_TEMPLATES
from tests.conftest import _asyncpg_dsn, _postgres_admin_url
from tests.served import BIN, free_port, service_env

REPLICAS = 5
DEADLINE_SECONDS = 60
# Alembic logs this once per revision it applies: the first revision's line is a migration run.
FIRST_REVISION_LINE = "Running upgrade  -> 20261122_0001"


@pytest.fixture
async def empty_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of this backend with no schema at all, for processes to migrate."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/shared.db"
        return
    admin = await asyncpg.connect(_asyncpg_dsn(_postgres_admin_url()), timeout=5)
    name = f"homework_rolling_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(_postgres_admin_url()).set(database=name).render_as_string(False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite behaviour")


def _settings(url: str, **overrides: object) -> Settings:
    return Settings(_env_file=None, env=Environment.test, database_url=url, **overrides)  # type: ignore[call-arg, arg-type]


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    def output(self) -> str:
        return self.log.read_text()


def start(args: Sequence[str], *, cwd: Path, env: dict[str, str], name: str) -> Process:
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [str(BIN / "homework"), *args], cwd=cwd, env=env, stdout=out, stderr=out
        )
    return Process(popen, log)


def start_servers(count: int, url: str, cwd: Path, *extra: str) -> list[Process]:
    """`count` `homework serve` processes, all started before any is waited for; one working
    directory for all, as replicas of one image (or `make run` twice) would have."""
    env = service_env(env="test", database_url=url)
    servers = []
    for number in range(count):
        port = free_port()
        server = start(
            ["serve", "--port", str(port), *extra], cwd=cwd, env=env, name=f"serve-{number}"
        )
        server.port = port
        servers.append(server)
    return servers


def readiness(server: Process) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{server.port}/readyz", trust_env=False).status_code
    except httpx.TransportError:
        return None


def wait_until_ready(servers: list[Process]) -> None:
    waiting = list(servers)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while waiting:
        for server in list(waiting):
            assert server.popen.poll() is None, (
                f"exited {server.popen.returncode}:\n{server.output()}"
            )
            if readiness(server) == 200:
                waiting.remove(server)
        assert time.monotonic() < deadline, "\n\n".join(s.output() for s in waiting)
        time.sleep(0.1)


@contextmanager
def stopped_at_exit(processes: list[Process]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        for process in processes:
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


def assert_clean_stop(processes: list[Process]) -> None:
    for process in processes:
        process.popen.terminate()
    for process in processes:
        # uvicorn re-raises the SIGTERM it shut down on, as a process killed by it would.
        assert process.popen.wait(timeout=10) in (0, -signal.SIGTERM), process.output()
        output = process.output()
        assert "Traceback" not in output and '"level": "error"' not in output, output


def migration_runs(processes: list[Process]) -> int:
    return sum(p.output().count(FIRST_REVISION_LINE) for p in processes)


async def schema_state(url: str) -> tuple[str | None, int]:
    engine = create_engine(_settings(url))
    try:
        async with engine.connect() as connection:
            revision = await migrations.current_revision(connection)
            builtins = 0
            if revision is not None:
                builtins = (
                    await connection.scalar(
                        select(func.count())
                        .select_from(Template)
                        .where(Template.tenant_id.is_(None))
                    )
                    or 0
                )
            return revision, builtins
    finally:
        await engine.dispose()


AT_HEAD = (migrations.head_revision(), len(BUILTIN_TEMPLATES))


# (a): replicas started at once on an empty PostgreSQL database. (On SQLite, BEGIN IMMEDIATE
# already serialised them before the file lock; the lock itself is tested below.)
async def test_replicas_started_at_once_all_become_ready(
    empty_database_url: str, tmp_path: Path, postgres_only: None
) -> None:
    servers = start_servers(REPLICAS, empty_database_url, tmp_path)
    with stopped_at_exit(servers):
        await asyncio.to_thread(wait_until_ready, servers)
        assert_clean_stop(servers)
    assert migration_runs(servers) == 1, "one replica migrates; the others wait and find head"
    assert await schema_state(empty_database_url) == AT_HEAD


# (b): migrate jobs run at once.
async def test_concurrent_migrate_upgrades_all_succeed_and_migrate_once(
    empty_database_url: str, tmp_path: Path, postgres_only: None
) -> None:
    env = service_env(env="test", database_url=empty_database_url)
    jobs = [start(["migrate", "upgrade"], cwd=tmp_path, env=env, name=f"job-{n}") for n in range(3)]
    with stopped_at_exit(jobs):
        for job in jobs:
            assert await asyncio.to_thread(job.popen.wait, DEADLINE_SECONDS) == 0, job.output()
            assert "upgraded to head" in job.output()
            assert "Traceback" not in job.output()
    assert migration_runs(jobs) == 1
    assert await schema_state(empty_database_url) == AT_HEAD


async def test_concurrent_builtin_data_syncs_insert_each_template_once(
    empty_database_url: str,
) -> None:
    settings = _settings(empty_database_url)
    await migrations.upgrade(settings, "head")
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM template_versions"))
            await connection.execute(text("DELETE FROM templates"))
    finally:
        await engine.dispose()
    # Each reads "no built-ins yet", then inserts them all, unless they take turns.
    await asyncio.gather(*(migrations.sync_builtin_data(settings) for _ in range(REPLICAS)))
    assert await schema_state(empty_database_url) == AT_HEAD


# (d): --no-migrate replicas wait for the migrate job.
async def test_unmigrated_server_becomes_ready_once_a_job_migrates(
    empty_database_url: str, tmp_path: Path, postgres_only: None
) -> None:
    [server] = start_servers(1, empty_database_url, tmp_path, "--no-migrate")
    with stopped_at_exit([server]):
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (status := await asyncio.to_thread(readiness, server)) is None:
            assert server.popen.poll() is None, server.output()
            assert time.monotonic() < deadline, server.output()
            await asyncio.sleep(0.1)
        assert status == 503

        env = service_env(env="test", database_url=empty_database_url)
        job = start(["migrate", "upgrade"], cwd=tmp_path, env=env, name="job")
        assert await asyncio.to_thread(job.popen.wait, DEADLINE_SECONDS) == 0, job.output()
        # The same process, not restarted: /readyz reads the revision on every probe.
        assert await asyncio.to_thread(readiness, server) == 200
        assert_clean_stop([server])
    assert migration_runs([server]) == 0
    # Reading the revision is quiet: no Alembic lines per probe.
    assert '"logger": "alembic' not in server.output(), server.output()


async def test_the_worker_never_migrates(empty_database_url: str) -> None:
    """The schema is the migrate job's (or serve's) to move: a worker started first leaves it
    empty, and fails its round rather than migrating."""
    from app.worker import loop

    result = await loop.run_once_with(_settings(empty_database_url))
    assert result.failed
    assert await schema_state(empty_database_url) == (None, 0)


# (e): the lock is really taken, and its wait is bounded.
async def test_migrate_waits_for_the_advisory_lock_and_gives_up_after_its_timeout(
    empty_database_url: str, tmp_path: Path, postgres_only: None
) -> None:
    holder = await asyncpg.connect(_asyncpg_dsn(empty_database_url), timeout=5)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrations.MIGRATION_LOCK_KEY)
        impatient = start(
            ["migrate", "upgrade"],
            cwd=tmp_path,
            env=service_env(
                env="test", database_url=empty_database_url, migration_lock_timeout_seconds="1"
            ),
            name="impatient",
        )
        patient = start(
            ["migrate", "upgrade"],
            cwd=tmp_path,
            env=service_env(env="test", database_url=empty_database_url),
            name="patient",
        )
        with stopped_at_exit([impatient, patient]):
            assert await asyncio.to_thread(impatient.popen.wait, DEADLINE_SECONDS) == 1
            output = impatient.output()
            assert "Traceback" not in output, output
            assert f"advisory lock {migrations.MIGRATION_LOCK_KEY}" in output, output
            assert "for more than 1 s" in output, output
            assert "raise HOMEWORK_MIGRATION_LOCK_TIMEOUT_SECONDS" in output, output
            assert f"pid {holder.get_server_pid()}" in output, output

            # The patient one waits on the lock (PostgreSQL says so), having migrated nothing.
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = $1 AND objid = $2 AND objsubid = 1",
                migrations.MIGRATION_LOCK_KEY >> 32,
                migrations.MIGRATION_LOCK_KEY & 0xFFFF_FFFF,
            )
            assert waiting == 1 and patient.popen.poll() is None, patient.output()
            assert await schema_state(empty_database_url) == (None, 0)

            await holder.execute("SELECT pg_advisory_unlock($1)", migrations.MIGRATION_LOCK_KEY)
            assert await asyncio.to_thread(patient.popen.wait, DEADLINE_SECONDS) == 0
        assert await schema_state(empty_database_url) == AT_HEAD
    finally:
        await holder.close()


async def test_migrate_waits_for_the_sqlite_file_lock_and_gives_up_after_its_timeout(
    empty_database_url: str, tmp_path: Path, sqlite_only: None
) -> None:
    lock_path = migrations.sqlite_lock_path(empty_database_url)
    assert lock_path == tmp_path / "shared.db.migrate.lock"
    with lock_path.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        env = service_env(
            env="test", database_url=empty_database_url, migration_lock_timeout_seconds="0.5"
        )
        job = start(["migrate", "upgrade"], cwd=tmp_path, env=env, name="job")
        with stopped_at_exit([job]):
            assert await asyncio.to_thread(job.popen.wait, DEADLINE_SECONDS) == 1
        output = job.output()
        assert "Traceback" not in output, output
        assert f"({lock_path})" in output and "for more than 0.5 s" in output, output
    assert await schema_state(empty_database_url) == (None, 0)


def test_the_lock_key_is_derived_from_its_name() -> None:
    assert migrations.migration_lock_key() == migrations.MIGRATION_LOCK_KEY
    assert 0 < migrations.MIGRATION_LOCK_KEY < 2**63


@pytest.mark.parametrize(
    ("url", "lock"),
    [
        ("sqlite+aiosqlite:////data/homework.db", "/data/homework.db.migrate.lock"),
        ("sqlite+aiosqlite:///./homework.db", "homework.db.migrate.lock"),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite:///file:shared?mode=memory&cache=shared&uri=true", None),
    ],
    ids=["absolute", "relative", "no-file", "memory", "memory-uri"],
)
def test_sqlite_lock_file_sits_beside_the_database(url: str, lock: str | None) -> None:
    assert migrations.sqlite_lock_path(url) == (None if lock is None else Path(lock))
