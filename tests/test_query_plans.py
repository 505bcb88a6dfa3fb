"""The benchmark scenarios (and the FHIR searches) read through indexes: no sequential scan of a
table that grows.

Issue 9: "every scenario's queries use indexes on the seeded data (EXPLAIN shows no sequential
scan of a large table)". The statements are not listed here: they are captured while the service
serves each scenario of bench/load.py (a-e), so the test stays true when the queries change.
Each one is then explained with its own parameters on a connection where `enable_seqscan` is
off. On a small table the planner would rightly prefer a sequential scan; with it disabled it
takes an index whenever one can serve the statement, and still shows "Seq Scan" where none can.
Such a "Seq Scan" of a table that grows with clients reads millions of rows on a real tenant.

What this cannot see: how selective the index it finds is, and which of several the planner picks
at scale (on a few rows it may pick a poorer one). An index on a low-cardinality leading column
passes (drop ix_reminders_occurrence_id and the completion's UPDATE of reminders is served by
ix_reminders_state_due_at). bench/load.py writes the EXPLAIN ANALYZE on the seeded tenant for that.

PostgreSQL only: the plans are PostgreSQL's, and it is what the service runs on in production.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.scopes import Context
from app.models import Base, Completion, Occurrence
from tests.homework_helpers import assign, freeze, new_client
from tests.world import World

# Tables whose rows grow with the tenant's clients and their activity: a sequential scan of any
# of them reads the whole table, millions of rows on a real tenant (bench/seed_load.py).
LARGE_TABLES = frozenset(
    {
        "clients",
        "clinicians",
        "care_team_members",
        "assignments",
        "occurrences",
        "adjustments",
        "completions",
        "completion_revisions",
        "reminders",
        "events",
        "webhook_deliveries",
        "webhook_attempts",
        "audit_events",
        "idempotency_keys",
    }
)
# Configuration, a handful of rows per tenant whatever its size (the built-in templates and a few
# custom ones, an OAuth client or two): scanning them whole costs what an index lookup does.
SMALL_TABLES = frozenset(
    {
        "tenants",
        "oauth_clients",
        "identity_providers",
        "templates",
        "template_versions",
        "webhook_endpoints",
        # Revocations are rare, and each one deletes those whose tokens have all expired.
        "token_revocations",
    }
)

# The statements EXPLAIN accepts; BEGIN, SAVEPOINT, SET, the pool's ping and the like are not.
# A plain INSERT ... VALUES is explained too: its plan has no scan, so it costs nothing, and no
# rule has to tell it apart from an INSERT ... SELECT.
EXPLAINABLE = ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE")
_FIRST_WORD = re.compile(r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(\w+)", re.DOTALL)

# Each scenario must be seen touching these, or the capture has missed its statements (the
# service reaching PostgreSQL by a path neither hook below sees) and the check would be vacuous.
MUST_TOUCH = {
    "a": {"occurrences"},
    "b": {"assignments", "occurrences"},
    "c": {"assignments"},
    "d": {"idempotency_keys", "occurrences", "completions"},
    "e": {"care_team_members", "completions", "occurrences"},
    # The FHIR searches (bench/fhir_cost.py measures the first beside /v1/completions).
    "f": {"completions", "assignments", "clients"},
    "g": {"occurrences", "assignments", "completions"},
    "h": {"occurrences"},
}

PLAN_NODE_SHOWN = ("Node Type", "Relation Name", "Alias", "Filter", "Plan Rows", "Total Cost")

NOW = datetime(2026, 11, 6, 12, tzinfo=UTC)  # day 6 of the series: its 20:00 entry is open


@dataclass(frozen=True)
class Captured:
    statement: str
    parameters: tuple[Any, ...]


@contextmanager
def capture(engine: AsyncEngine) -> Iterator[list[Captured]]:
    """Every statement the service sends to PostgreSQL, with the parameters it binds.

    Two hooks: SQLAlchemy's cursor (Core and ORM statements, run as prepared statements, which
    asyncpg's query logger does not see) and asyncpg's query logger on every connection checked
    out of the pool (what a hot path sends on the driver connection directly, and SQLAlchemy's
    executemany).
    """
    seen: list[Captured] = []
    logged: list[Any] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        keep(statement, parameters, many=executemany)

    def log(query: Any) -> None:
        # Connection.fetch/execute(query, *args) log a tuple; executemany logs its list of rows.
        keep(query.query, query.args, many=not isinstance(query.args, tuple))

    def keep(statement: str, parameters: Any, *, many: bool) -> None:
        if many:
            parameters = next(iter(parameters), ())  # explained once, with the first row
        captured = Captured(statement, tuple(parameters or ()))
        if explainable(statement) and captured not in seen:
            seen.append(captured)

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver not in logged:
            driver.add_query_logger(log)
            logged.append(driver)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    event.listen(engine.sync_engine, "checkout", on_checkout)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "checkout", on_checkout)
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        for driver in logged:
            driver.remove_query_logger(log)


def explainable(statement: str) -> bool:
    first = _FIRST_WORD.match(statement)
    return first is not None and first.group(1).upper() in EXPLAINABLE


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child)


@dataclass
class Plans:
    relations: set[str]  # every table the statements read or write
    seq_scans: list[str]  # one line per sequential scan of a large table


async def explain(connection: AsyncConnection, scenario: str, statements: list[Captured]) -> Plans:
    """EXPLAIN each statement with its own parameters, bound by the same driver (asyncpg, through
    SQLAlchemy's cursor) as when the service ran it: the planner sees the values, not a guess."""
    plans = Plans(set(), [])
    for captured in statements:
        try:
            result = await connection.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) " + captured.statement, captured.parameters
            )
        except Exception as exc:  # the statement, not only the driver's error
            pytest.fail(f"{scenario}: could not explain {captured.statement[:200]!r}: {exc}")
        raw = result.scalar_one()
        plan = json.loads(raw) if isinstance(raw, str) else raw
        for node in plan_nodes(plan[0]["Plan"]):
            relation = node.get("Relation Name")
            if relation is None:
                continue
            plans.relations.add(relation)
            if node["Node Type"] == "Seq Scan" and relation in LARGE_TABLES:
                shown = {k: v for k, v in node.items() if k in PLAN_NODE_SHOWN}
                statement = " ".join(captured.statement.split())
                plans.seq_scans.append(
                    f"{scenario}: Seq Scan on {relation} in {statement[:200]!r}\n"
                    f"    plan node: {json.dumps(shown, default=str)}\n"
                    "    (no index serves its condition: one that starts with the filtered "
                    "column(s) would)"
                )
    return plans


async def seqscan_off(connection: AsyncConnection) -> None:
    # ANALYZE first (committed, as bench/load.py does after seeding): the plans then reflect the
    # rows, not the planner's defaults for tables it has never looked at.
    await connection.execute(text("ANALYZE"))
    await connection.commit()
    await connection.execute(text("SET LOCAL enable_seqscan = off"))


def client_headers(world: World, client_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token_for(world.a, Context.client, client_id)}"}


@dataclass
class Seeded:
    client_id: str  # client A1 (Europe/London), on clinician A1's caseload
    assignment_id: str  # its daily mood log
    open_occurrence: str  # day 6 of it, open at NOW


async def seed(http: httpx.AsyncClient, world: World) -> Seeded:
    """Clinician A1's caseload: six clients in five zones, each with a daily mood log (ten days)
    and a PHQ-9, the first four days answered; client A2 the same on clinician A2's caseload."""
    clock = freeze(world, "2026-11-01T09:00:00Z")
    clients = [(world.a.clients["A1"], "clinician_a1")]
    for zone in ("Europe/London", "America/New_York", "Asia/Kolkata", "Europe/Berlin", "UTC"):
        clients.append((await new_client(http, world, zone), "clinician_a1"))
    clients.append((world.a.clients["A2"], "clinician_a2"))
    daily: dict[str, dict[str, Any]] = {}
    for client_id, role in clients:
        created = await assign(
            http,
            world,
            client_id,
            {
                "type": "recurring",
                "rrule": "FREQ=DAILY;COUNT=10;BYHOUR=20;BYMINUTE=0",
                "start": "2026-11-01T20:00",
            },
            role=role,
        )
        assert created.status_code == 201, created.text
        daily[client_id] = created.json()
        phq9 = await assign(
            http,
            world,
            client_id,
            {"type": "once", "due_at": "2026-11-03T12:00"},
            template="tpl_builtin_phq9",
            role=role,
        )
        assert phq9.status_code == 201, phq9.text

    clock.at = NOW
    for n, (client_id, _) in enumerate(clients):
        for day, occurrence in enumerate(daily[client_id]["occurrences"][:4]):
            body: dict[str, Any] = {"status": "done", "answers": {"mood": 3 + day}}
            if (n + day) % 4 == 2:
                body = {"status": "partial", "answers": {"mood": 4}, "helpfulness": 6}
            elif (n + day) % 4 == 3:  # some felt overwhelmed: open distress flags
                reason = "felt_overwhelmed" if n % 2 else "no_time"
                body = {"status": "not_done", "barriers": [reason]}
            done = await http.post(
                "/v1/completions",
                json={"occurrence_id": occurrence["id"], **body},
                headers=client_headers(world, client_id),
            )
            assert done.status_code == 201, done.text
    # What the worker would have done by now: closed windows missed, day 6's open.
    async with world.app.state.database.sessionmaker() as session, session.begin():
        upcoming = Occurrence.status == "upcoming"
        await session.execute(
            update(Occurrence).where(upcoming, Occurrence.closes_at <= NOW).values(status="missed")
        )
        await session.execute(
            update(Occurrence)
            .where(upcoming, Occurrence.opens_at <= NOW, Occurrence.closes_at > NOW)
            .values(status="open")
        )
    first = daily[world.a.clients["A1"]]
    return Seeded(world.a.clients["A1"], first["id"], first["occurrences"][5]["id"])


def scenarios(
    http: httpx.AsyncClient, world: World, seeded: Seeded
) -> dict[str, Callable[[], Awaitable[httpx.Response]]]:
    """bench/load.py's scenarios, as the benchmark sends them."""
    as_client = client_headers(world, seeded.client_id)
    as_clinician = world.headers("clinician_a1")
    return {
        "a": lambda: http.get("/v1/me/homework", headers=as_client),
        "b": lambda: http.get(f"/v1/assignments/{seeded.assignment_id}", headers=as_clinician),
        "c": lambda: http.get(
            "/v1/assignments", params={"client_id": seeded.client_id}, headers=as_clinician
        ),
        "d": lambda: http.post(
            "/v1/completions",
            json={
                "occurrence_id": seeded.open_occurrence,
                "status": "done",
                "answers": {"mood": 6},
            },
            headers={**as_client, "Idempotency-Key": "query-plans-d"},
        ),
        "e": lambda: http.get(
            f"/v1/clinicians/{world.a.clinicians['A1']}/caseload", headers=as_clinician
        ),
        "f": lambda: http.get(
            "/fhir/R4/QuestionnaireResponse",
            params={"patient": seeded.client_id},
            headers=as_clinician,
        ),
        "g": lambda: http.get(
            "/fhir/R4/Task", params={"patient": seeded.client_id}, headers=as_clinician
        ),
        "h": lambda: http.get("/fhir/R4/Task", headers=world.headers("system_a")),
    }


TITLES = {
    "a": "(a) GET /v1/me/homework as a client",
    "b": "(b) GET /v1/assignments/{id} as a clinician",
    "c": "(c) GET /v1/assignments?client_id= as a clinician",
    "d": "(d) POST /v1/completions with an Idempotency-Key as a client",
    "e": "(e) GET /v1/clinicians/{id}/caseload as a clinician",
    "f": "(f) GET /fhir/R4/QuestionnaireResponse?patient= as a clinician",
    "g": "(g) GET /fhir/R4/Task?patient= as a clinician",
    "h": "(h) GET /fhir/R4/Task as the vendor's backend (the whole tenant)",
}


async def test_no_benchmark_scenario_scans_a_large_table(
    client: httpx.AsyncClient, world: World, postgres_only: None
) -> None:
    seeded = await seed(client, world)
    engine: AsyncEngine = world.app.state.database.engine
    captured: dict[str, list[Captured]] = {}
    for name, request in scenarios(client, world, seeded).items():
        with capture(engine) as seen:
            response = await request()
            await asyncio.sleep(0)  # asyncpg hands its log records over with call_soon
        expected = 201 if name == "d" else 200
        assert response.status_code == expected, f"{TITLES[name]}: {response.text}"
        captured[name] = seen

    findings: list[str] = []
    async with engine.connect() as connection:
        await seqscan_off(connection)
        for name, statements in captured.items():
            plans = await explain(connection, TITLES[name], statements)
            missing = MUST_TOUCH[name] - plans.relations
            assert not missing, (
                f"{TITLES[name]}: no captured statement touches {sorted(missing)}; the service "
                "must reach PostgreSQL by a path capture() does not hook. Captured: "
                + "; ".join(c.statement[:80] for c in statements)
            )
            findings += plans.seq_scans
        await connection.rollback()
    assert not findings, "sequential scans of large tables:\n" + "\n".join(findings)


async def test_the_check_finds_a_sequential_scan_on_either_driver_path(
    app: Any, postgres_only: None
) -> None:
    """The check can fail: a filter on a column that no index starts with is a Seq Scan, and it
    is found whether the statement went through SQLAlchemy or straight to the asyncpg driver."""
    engine: AsyncEngine = app.state.database.engine
    with capture(engine) as seen:
        async with engine.connect() as connection:
            await connection.execute(
                select(Completion.id).where(Completion.reflection == "It helped")
            )
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.fetch("SELECT id FROM audit_events WHERE ip = $1", "192.0.2.1")
            await connection.rollback()
        await asyncio.sleep(0)
    assert [c.parameters for c in seen] == [("It helped",), ("192.0.2.1",)], seen
    async with engine.connect() as connection:
        await seqscan_off(connection)
        plans = await explain(connection, "a probe", seen)
        await connection.rollback()
    assert plans.relations == {"completions", "audit_events"}
    assert [finding.split(" in ")[0] for finding in plans.seq_scans] == [
        "a probe: Seq Scan on completions",
        "a probe: Seq Scan on audit_events",
    ]
    assert all('"Filter":' in finding for finding in plans.seq_scans)


def test_every_table_is_classified() -> None:
    """A new table goes in one list or the other, or a scan of it would escape the check."""
    tables = {table.name for table in Base.metadata.sorted_tables}
    assert tables - LARGE_TABLES - SMALL_TABLES == set(), "classify these tables above"
    assert LARGE_TABLES.isdisjoint(SMALL_TABLES)
    assert (LARGE_TABLES | SMALL_TABLES) - tables == set(), "these tables are gone"
