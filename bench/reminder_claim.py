"""How long the reminder worker's claim takes as the reminders table grows.

    .venv/bin/python -m bench.reminder_claim [--sizes 10000 1000000] [--due 150] [--repeats 15]

Creates its own PostgreSQL database (next to HOMEWORK_TEST_POSTGRES_URL's, by default
postgresql+asyncpg://postgres@127.0.0.1:5432/test), migrates it, and for each size N seeds, with
set-based SQL, one tenant, clients, one assignment per client, occurrences and N `scheduled`
reminders of which `--due` are due and the rest spread over the next four weeks. After
`VACUUM ANALYZE` it times `firing.claim_due(batch_size=100)` (each repeat in a transaction
that is rolled back, so every repeat sees the same data), reports the median, prints the
claim's `EXPLAIN ANALYZE` plan (it must use `ix_reminders_state_due_at`), and finally the ratio
between the largest and the smallest size. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.core import migrations
from app.core.config import Environment, Settings
from app.core.db import Database
from app.services.reminders import firing

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
BATCH = 100
INDEX = "ix_reminders_state_due_at"
REMINDERS_PER_OCCURRENCE = 10
REMINDERS_PER_CLIENT = 1000

SEED = [
    "INSERT INTO tenants (id, name, created_at, event_sequence) "
    "VALUES ('ten_bench', 'bench', $1, 0)",
    # One client per REMINDERS_PER_CLIENT reminders, one assignment each.
    """INSERT INTO clients (id, tenant_id, external_id, time_zone, locale, created_at,
           updated_at, version, reminders_muted)
       SELECT 'clt_' || lpad(g::text, 26, '0'), 'ten_bench', 'bench-' || g, 'Europe/London',
              'en', $1, $1, 1, false
       FROM generate_series(1, $2::int) AS g""",
    """INSERT INTO assignments (id, tenant_id, client_id, template_id, template_version_id,
           kind, title, instructions, status, schedule_type, rrule, start_local, starts_at,
           opens_before_minutes, grace_minutes, series_complete, ordinal_base, created_at,
           updated_at, version)
       SELECT 'asg_' || lpad(g::text, 26, '0'), 'ten_bench', 'clt_' || lpad(g::text, 26, '0'),
              v.template_id, v.id, 'mood_log', 'Mood log', 'Rate your mood.', 'active',
              'recurring', 'FREQ=DAILY;BYHOUR=20;BYMINUTE=0', '2026-11-22T20:00', $1, 720,
              720, false, 0, $1, $1, 1
       FROM generate_series(1, $2::int) AS g,
            (SELECT id, template_id FROM template_versions
             WHERE template_id = 'tpl_builtin_mood_log' ORDER BY number DESC LIMIT 1) AS v""",
    # Occurrence g belongs to assignment a, as its o-th (one a day).
    """INSERT INTO occurrences (id, tenant_id, assignment_id, client_id, ordinal, due_at,
           opens_at, closes_at, local_due, time_zone, status, created_at, updated_at)
       SELECT 'occ_' || lpad(g::text, 26, '0'), 'ten_bench', 'asg_' || lpad(a::text, 26, '0'),
              'clt_' || lpad(a::text, 26, '0'), o, due, due - interval '12 hours',
              due + interval '12 hours',
              to_char(due AT TIME ZONE 'Europe/London', 'YYYY-MM-DD"T"HH24:MI'),
              'Europe/London', 'open', $1, $1
       FROM generate_series(1, $3::int) AS g,
            LATERAL (SELECT (g - 1) % $2::int + 1 AS a, (g - 1) / $2::int AS o) AS x,
            LATERAL (SELECT $1::timestamptz + o * interval '1 day' AS due) AS y""",
    # Reminder g: the first $5 are due (up to $5 seconds ago), the rest spread over 28 days.
    """INSERT INTO reminders (id, tenant_id, client_id, assignment_id, occurrence_id, due_at,
           local_due, time_zone, state, created_at, updated_at, version)
       SELECT 'rem_' || lpad(g::text, 26, '0'), 'ten_bench', 'clt_' || lpad(a::text, 26, '0'),
              'asg_' || lpad(a::text, 26, '0'), 'occ_' || lpad(occ::text, 26, '0'), due,
              to_char(due AT TIME ZONE 'Europe/London', 'YYYY-MM-DD"T"HH24:MI'),
              'Europe/London', 'scheduled', $1, $1, 1
       FROM generate_series(1, $4::int) AS g,
            LATERAL (SELECT (g - 1) % $3::int + 1 AS occ) AS x,
            LATERAL (SELECT (occ - 1) % $2::int + 1 AS a) AS y,
            LATERAL (
              SELECT CASE
                WHEN g <= $5::int THEN $1::timestamptz - g * interval '1 second'
                ELSE $1::timestamptz + (g::float8 / $4::int) * interval '28 days'
              END AS due
            ) AS z""",
]


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, env=Environment.test, database_url=url)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


async def _seed(url: str, size: int, due: int) -> float:
    clients = max(1, size // REMINDERS_PER_CLIENT)
    occurrences = max(clients, size // REMINDERS_PER_OCCURRENCE)
    started = time.perf_counter()
    connection = await asyncpg.connect(_dsn(url))
    try:
        # Not `TRUNCATE tenants CASCADE`: that would empty the built-in templates too.
        await connection.execute("TRUNCATE reminders, occurrences, assignments, clients CASCADE")
        await connection.execute("DELETE FROM tenants WHERE id = 'ten_bench'")
        async with connection.transaction():
            # The rows are consistent by construction: skip the per-row foreign-key triggers
            # (a superuser's privilege; without it the seed is only slower).
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                async with connection.transaction():
                    await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("SET LOCAL synchronous_commit = off")
            await connection.execute(SEED[0], NOW)
            await connection.execute(SEED[1], NOW, clients)
            await connection.execute(SEED[2], NOW, clients)
            await connection.execute(SEED[3], NOW, clients, occurrences)
            await connection.execute(SEED[4], NOW, clients, occurrences, size, due)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def _time_claims(database: Database, repeats: int) -> tuple[dict[str, float], int]:
    """Median milliseconds of one claim (its SELECT and its UPDATE: two round trips), each in
    a transaction that is rolled back; and of each statement as the driver ran it."""
    statements: dict[str, list[float]] = {"SELECT": [], "UPDATE": []}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        kind = statement.lstrip().split(None, 1)[0].upper()
        if kind in statements:
            statements[kind].append(elapsed)

    timings = []
    claimed = 0
    engine = database.engine.sync_engine
    for repeat in range(repeats + 2):  # two to warm the pool, the caches and the statements
        async with database.sessionmaker() as session:
            transaction = await session.begin()
            await session.connection()  # the pool checkout and BEGIN are not the claim's
            if repeat == 2:
                event.listen(engine, "before_cursor_execute", before)
                event.listen(engine, "after_cursor_execute", after)
            started = time.perf_counter()
            ids = await firing.claim_due(session, NOW, BATCH, "bench")
            timings.append((time.perf_counter() - started) * 1000)
            claimed = len(ids)
            await transaction.rollback()
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "after_cursor_execute", after)
    medians = {"claim": statistics.median(timings[2:])}
    medians.update({kind: statistics.median(values) for kind, values in statements.items()})
    return medians, claimed


async def _explain(database: Database) -> str:
    """The plan of the claim's SELECT, exactly as claim_due sends it."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not captured:
            captured.append((statement, parameters))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with database.sessionmaker() as session:
            transaction = await session.begin()
            await firing.claim_due(session, NOW, BATCH, "bench")
            await transaction.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        async with driver.transaction():
            rows = await driver.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}", *parameters
            )
            plan = "\n".join(row[0] for row in rows)
            await driver.execute("ROLLBACK")  # undo the locks EXPLAIN ANALYZE took
    return plan


async def _table_size(url: str) -> str:
    connection = await asyncpg.connect(_dsn(url))
    try:
        value: str = await connection.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size('reminders'))"
        )
        return value
    finally:
        await connection.close()


async def main(sizes: list[int], due: int, repeats: int) -> int:
    admin_url = os.environ.get("HOMEWORK_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = f"homework_bench_{uuid.uuid4().hex[:12]}"
    url = make_url(admin_url).set(database=name).render_as_string(False)
    admin = await asyncpg.connect(_dsn(admin_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    medians: dict[int, float] = {}
    plans_ok = True
    try:
        await migrations.upgrade(_settings(url))
        server = await admin.fetchval("SHOW server_version")
        print(
            f"PostgreSQL {server}, {os.cpu_count()} CPUs; batch {BATCH}, {due} due, "
            f"median of {repeats} claims each rolled back"
        )
        for size in sizes:
            seconds = await _seed(url, size, due)
            database = Database(_settings(url))
            try:
                median, claimed = await _time_claims(database, repeats)
                plan = await _explain(database)
            finally:
                await database.dispose()
            medians[size] = median["claim"]
            print(
                f"\nN = {size:>9,}: seeded in {seconds:.1f} s (reminders table "
                f"{await _table_size(url)}); claim_due(batch_size={BATCH}) claimed {claimed}: "
                f"median {median['claim']:.2f} ms (its SELECT {median['SELECT']:.2f} ms, "
                f"its UPDATE {median['UPDATE']:.2f} ms, as the driver saw them)"
            )
            print("EXPLAIN (ANALYZE, BUFFERS) of the claim's SELECT:")
            print("  " + plan.replace("\n", "\n  "))
            if INDEX not in plan:
                plans_ok = False
                print(f"!! the plan does not use {INDEX}")
        smallest, largest = min(medians), max(medians)
        if largest != smallest:
            print(
                f"\nratio N={largest:,} / N={smallest:,}: "
                f"{medians[largest] / medians[smallest]:.2f}x"
            )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0 if plans_ok else 1


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--due", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=15)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.sizes, arguments.due, arguments.repeats)))


if __name__ == "__main__":
    run()
