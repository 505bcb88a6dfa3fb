"""The ceiling for bench/load.py: the same SQL as the service, with nothing else around it.

    CEILING_DSN=postgresql://... CEILING_POOL_SIZE=32 \\
        .venv/bin/uvicorn bench.ceiling:app --port 8802 --workers 1 --no-access-log

A bare Starlette app on an asyncpg pool (min = max = CEILING_POOL_SIZE), served by one uvicorn
worker like the service (uvloop and httptools, as uvicorn picks them for both). For each
benchmark scenario it sends PostgreSQL the same statements as the service does, with the same
text and parameters, in the same order, and answers the same JSON shape, the same status and the
ETag. Where the service's statement is a `Statement` built once at import (app.core.driver),
the ceiling imports it and sends its `.sql` with the parameters in its order (`positional`, which
also applies the columns' bind processing), so that the two cannot drift apart; the statements
the ORM still writes (the assignment read and ended when its series is done) are the constants
below, captured from the service.

What it does:
- reads the caller (tenant, kind, subject, OAuth client, token id) from the bearer token's
  payload, base64-decoded: the ids the SQL needs;
- runs the service's statements: visibility filters, the audit INSERT (`execute` for one row,
  `executemany` for several, as the service), and for the completion POST the Idempotency-Key
  claim (INSERT ... ON CONFLICT DO NOTHING) as one statement that commits on its own, then one
  transaction (BEGIN ISOLATION LEVEL READ COMMITTED, as SQLAlchemy's asyncpg adapter sends it):
  the locked read (the occurrence FOR UPDATE, with its assignment, template version and client),
  the completion, its revision and its `completion.created` event, the occurrence's and the
  reminders' UPDATEs, the series' resolution count when the assignment is active and its series
  complete (then, if every occurrence is resolved, the assignment read and ended), the audit row,
  the stored response, the `assignment.completed` event if it ended (the ORM flushes it at
  COMMIT), COMMIT;
- computes what the response needs from the rows (the local day's bounds, the caseload's
  ratios, means and ordering, `late`, PHQ-9/GAD-7 scores) and serialises it with the standard
  library's json.

What it does not do, on purpose (that is the difference being measured):
- no JWT signature, expiry, audience or scope check;
- no validation of the query string, path or body (no pydantic, no response-schema validation
  of the answers and so no distress flags: the template version is still read, as the service
  reads it); a key already claimed answers 409 (the service would read it, locked, to replay or
  refuse);
- no ORM and no SQLAlchemy at run time: rows are asyncpg records, not entities, and no unit of
  work, identity map or flush ordering (the service's statement objects are only read for their
  text and parameter order);
- no BEGIN/COMMIT around the reads (each statement commits on its own) and no pool pre-ping,
  like the service now (it pings only a connection that sat idle, which none does under load);
  no SQLAlchemy pool, and no reset query when a connection goes back to the pool (asyncpg's
  default would be a round trip the service does not make);
- no middleware (request id header, access log, body-size limit), no error handlers beyond 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core import idempotency
from app.core.driver import Statement
from app.core.ids import new_id
from app.core.scopes import Context
from app.services import (
    assignments,
    audit,
    caseload,
    completions,
    events,
    homework,
    reminders,
)

# --- The service's statements ---------------------------------------------------------------------

# Built once at import by the service's own modules: the same text, the same parameter order.
CLIENT = homework._CLIENT
HOMEWORK_TODAY = homework._ITEMS
VISIBLE_ASSIGNMENT = assignments._READ
OCCURRENCES_OF_ASSIGNMENT = assignments._OCCURRENCES_OF
# GET /v1/assignments?client_id=: the search with one filter (client_id) and no cursor.
VISIBLE_ASSIGNMENTS_OF_CLIENT = {
    kind: assignments._search_statement(kind, ("client_id",), False) for kind in Context
}
SERIES_RESOLUTION = assignments._RESOLUTION
VISIBLE_CLINICIAN = caseload._CLINICIAN
CASELOAD_CLIENTS = caseload._CLIENTS
CASELOAD_OCCURRENCES = caseload._OCCURRENCE_FIGURES
LOCKED_OCCURRENCE = completions._LOCKED_OCCURRENCE
MOVE_OCCURRENCE = completions._MOVE_OCCURRENCE
CANCEL_REMINDERS = reminders._CANCEL_PENDING_OF_OCCURRENCE
INSERT_AUDIT = audit._INSERT
CLAIM_IDEMPOTENCY_KEY = idempotency._CLAIM
STORE_IDEMPOTENT_RESPONSE = idempotency._STORE

INSERT_COMPLETION = completions._INSERT_COMPLETION.sql
INSERT_REVISION = completions._INSERT_REVISION.sql
INSERT_EVENT = events._INSERT.sql

# Written by the ORM (the assignment's end, when its series is done), verbatim.

ASSIGNMENT_BY_ID = """SELECT assignments.id, assignments.tenant_id, assignments.client_id, assignments.clinician_id, assignments.template_id, assignments.template_version_id, assignments.kind, assignments.title, assignments.instructions, assignments.purpose, assignments.difficulty_step, assignments.status, assignments.schedule_type, assignments.rrule, assignments.start_local, assignments.starts_at, assignments.due_at, assignments.opens_before_minutes, assignments.grace_minutes, assignments.materialized_until, assignments.series_complete, assignments.ordinal_base, assignments.reminder_policy, assignments.cancelled_at, assignments.ended_at, assignments.created_at, assignments.updated_at, assignments.version 
FROM assignments 
WHERE assignments.id = $1::VARCHAR"""  # noqa: E501, W291

FINISH_ASSIGNMENT = """UPDATE assignments SET status=$1::VARCHAR, ended_at=$2::TIMESTAMP WITH TIME ZONE, updated_at=$3::TIMESTAMP WITH TIME ZONE, version=$4::INTEGER WHERE assignments.id = $5::VARCHAR AND assignments.version = $6::INTEGER"""  # noqa: E501

OCCURRENCE_STATUS = {"done": "completed", "partial": "partial", "not_done": "declined"}
CONTENT_FIELDS = (
    "status",
    "answers",
    "barriers",
    "barrier_note",
    "helpfulness",
    "effort",
    "minutes_spent",
    "reflection",
)
PHQ9_BANDS = (
    (4, "minimal"),
    (9, "mild"),
    (14, "moderate"),
    (19, "moderately_severe"),
    (27, "severe"),
)
GAD7_BANDS = ((4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe"))


def args(statement: Statement, **params: Any) -> list[Any]:
    """The statement's parameters in its positional order (with the values it holds itself)."""
    return statement.positional(params)


def columns(statement: Statement) -> dict[str, int]:
    """The position of each `table.column` in a row of `statement` (its tables in the order
    selected): in a join, the later tables' columns have generated labels (`id_1`, ...)."""
    at: dict[str, int] = {}
    for table in statement.tables:
        for column in table.columns:
            at[f"{table.name}.{column.name}"] = len(at)
    return at


TODAY_AT = columns(HOMEWORK_TODAY)
ASSIGNMENT_AT = columns(VISIBLE_ASSIGNMENT[Context.clinician])
OCCURRENCE_AT = columns(OCCURRENCES_OF_ASSIGNMENT)
LOCKED_AT = columns(LOCKED_OCCURRENCE[Context.client])

# --- Small helpers, each the least the response needs ------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_value(raw: Any) -> Any:
    """asyncpg hands `json` columns back as text."""
    return json.loads(raw) if isinstance(raw, str) else raw


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def respond(payload: Any, status: int = 200, etag: str | None = None) -> Response:
    headers = {"etag": etag} if etag else None
    return Response(dumps(payload), status, headers=headers, media_type="application/json")


def not_found() -> Response:
    return Response(b'{"status":404}', 404, media_type="application/problem+json")


def conflict() -> Response:
    return Response(b'{"status":409}', 409, media_type="application/problem+json")


class Caller:
    """Who calls, from the token's payload. NOT verified: the ceiling trusts the token."""

    __slots__ = (
        "client_app_id",
        "context",
        "ip",
        "kind",
        "request_id",
        "subject_id",
        "tenant_id",
        "token_id",
    )

    def __init__(self, request: Request) -> None:
        token = request.headers.get("authorization", "").partition(" ")[2]
        try:
            part = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (IndexError, ValueError, binascii.Error) as exc:
            raise PermissionError from exc
        self.tenant_id: str = claims["tenant_id"]
        self.kind: str = claims["subject_kind"]
        self.context = Context(self.kind)
        self.subject_id: str = claims["sub"]
        self.client_app_id: str = claims["client_id"]
        self.token_id: str = claims["jti"]
        self.request_id = uuid.uuid4().hex
        self.ip = request.client.host if request.client else None

    def audit_row(
        self, now: datetime, action: str, kind: str, client_id: str, resource_id: str
    ) -> list[Any]:
        return args(
            INSERT_AUDIT,
            id=new_id("aud"),
            tenant_id=self.tenant_id,
            occurred_at=now,
            actor_kind=self.kind,
            actor_id=self.subject_id,
            client_app_id=self.client_app_id,
            token_id=self.token_id,
            client_id=client_id,
            action=action,
            resource_type=kind,
            resource_id=resource_id,
            request_id=self.request_id,
            ip=self.ip,
        )


async def record_audit(connection: asyncpg.Connection, rows: list[list[Any]]) -> None:
    """As the service: nothing for no row, `execute` for one, `executemany` for several."""
    if len(rows) == 1:
        await connection.execute(INSERT_AUDIT.sql, *rows[0])
    elif rows:
        await connection.executemany(INSERT_AUDIT.sql, rows)


def occurrence_json(row: Any, at: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row[at["occurrences.id"]],
        "assignment_id": row[at["occurrences.assignment_id"]],
        "ordinal": row[at["occurrences.ordinal"]],
        "status": row[at["occurrences.status"]],
        "due_at": iso(row[at["occurrences.due_at"]]),
        "opens_at": iso(row[at["occurrences.opens_at"]]),
        "closes_at": iso(row[at["occurrences.closes_at"]]),
        "local_due": row[at["occurrences.local_due"]],
        "time_zone": row[at["occurrences.time_zone"]],
    }


def assignment_json(row: Any, occurrences: list[Any] | None) -> dict[str, Any]:
    at = ASSIGNMENT_AT
    return {
        "id": row[at["assignments.id"]],
        "client_id": row[at["assignments.client_id"]],
        "clinician_id": row[at["assignments.clinician_id"]],
        "template": {
            "id": row[at["assignments.template_id"]],
            "version_id": row[at["assignments.template_version_id"]],
        },
        "kind": row[at["assignments.kind"]],
        "title": row[at["assignments.title"]],
        "instructions": row[at["assignments.instructions"]],
        "purpose": row[at["assignments.purpose"]],
        "difficulty_step": row[at["assignments.difficulty_step"]],
        "status": row[at["assignments.status"]],
        "schedule": {
            "type": row[at["assignments.schedule_type"]],
            "rrule": row[at["assignments.rrule"]],
            "start_local": row[at["assignments.start_local"]],
            "due_at": iso(row[at["assignments.due_at"]]),
        },
        "window": {
            "opens_before_minutes": row[at["assignments.opens_before_minutes"]],
            "grace_minutes": row[at["assignments.grace_minutes"]],
        },
        "reminders": json_value(row[at["assignments.reminder_policy"]]),
        "created_at": iso(row[at["assignments.created_at"]]),
        "updated_at": iso(row[at["assignments.updated_at"]]),
        "occurrences": [occurrence_json(o, OCCURRENCE_AT) for o in occurrences]
        if occurrences is not None
        else None,
    }


def pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool  # type: ignore[no-any-return]


# --- The scenarios -------------------------------------------------------------------------------


async def my_homework(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    at = TODAY_AT
    async with pool(request).acquire() as connection:
        client = await connection.fetchrow(
            CLIENT.sql, *args(CLIENT, client_id=caller.subject_id, tenant_id=caller.tenant_id)
        )
        if client is None:
            return not_found()
        zone = ZoneInfo(client["time_zone"])
        local_date = now.astimezone(zone).date()
        day_start = datetime.combine(local_date, day_time(), zone).astimezone(UTC)
        day_end = datetime.combine(local_date + timedelta(days=1), day_time(), zone).astimezone(UTC)
        rows = await connection.fetch(
            HOMEWORK_TODAY.sql,
            *args(HOMEWORK_TODAY, client_id=client["id"], day_start=day_start, day_end=day_end),
        )
        await record_audit(
            connection,
            [
                caller.audit_row(now, "list", "occurrence", client["id"], r[at["occurrences.id"]])
                for r in rows
            ],
        )
    items = [
        {
            "occurrence": occurrence_json(r, at),
            "assignment_id": r[at["assignments.id"]],
            "kind": r[at["assignments.kind"]],
            "title": r[at["assignments.title"]],
            "instructions": r[at["assignments.instructions"]],
            "purpose": r[at["assignments.purpose"]],
            "difficulty_step": r[at["assignments.difficulty_step"]],
            "estimated_minutes": r[at["template_versions.estimated_minutes"]],
            "response_schema": json_value(r[at["template_versions.response_schema"]]),
        }
        for r in rows
    ]
    return respond(
        {"date": local_date.isoformat(), "time_zone": client["time_zone"], "items": items}
    )


async def get_assignment(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    statement = VISIBLE_ASSIGNMENT[caller.context]
    async with pool(request).acquire() as connection:
        row = await connection.fetchrow(
            statement.sql,
            *args(
                statement,
                tenant_id=caller.tenant_id,
                subject_id=caller.subject_id,
                assignment_id=request.path_params["assignment_id"],
            ),
        )
        if row is None:
            return not_found()
        assignment_id = row[ASSIGNMENT_AT["assignments.id"]]
        client_id = row[ASSIGNMENT_AT["assignments.client_id"]]
        await record_audit(
            connection, [caller.audit_row(now, "read", "assignment", client_id, assignment_id)]
        )
        occurrences = await connection.fetch(
            OCCURRENCES_OF_ASSIGNMENT.sql,
            *args(OCCURRENCES_OF_ASSIGNMENT, assignment_id=assignment_id),
        )
    version = row[ASSIGNMENT_AT["assignments.version"]]
    return respond(assignment_json(row, occurrences), etag=f'"{assignment_id}.{version}"')


async def list_assignments(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    limit = 50
    statement = VISIBLE_ASSIGNMENTS_OF_CLIENT[caller.context]
    at = ASSIGNMENT_AT
    async with pool(request).acquire() as connection:
        rows = await connection.fetch(
            statement.sql,
            *args(
                statement,
                tenant_id=caller.tenant_id,
                subject_id=caller.subject_id,
                client_id=request.query_params["client_id"],
                limit=limit + 1,
            ),
        )
        page = rows[:limit]
        await record_audit(
            connection,
            [
                caller.audit_row(
                    now,
                    "list",
                    "assignment",
                    r[at["assignments.client_id"]],
                    r[at["assignments.id"]],
                )
                for r in page
            ],
        )
    next_cursor = None
    if len(rows) > limit:
        raw = f"v1:{page[-1][at['assignments.id']]}".encode()
        next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return respond({"data": [assignment_json(r, None) for r in page], "next_cursor": next_cursor})


def _measure(kind: str, answers: dict[str, Any] | None) -> tuple[int | None, str | None]:
    if answers is None or kind not in ("phq9", "gad7"):
        return None, None
    items, bands = (9, PHQ9_BANDS) if kind == "phq9" else (7, GAD7_BANDS)
    total = sum(int(answers[f"item_{n}"]) for n in range(1, items + 1))
    return total, next(band for top, band in bands if total <= top)


async def create_completion(request: Request) -> Response:
    caller = Caller(request)
    body_bytes = await request.body()
    body = json.loads(body_bytes)
    key = request.headers.get("idempotency-key")
    now = datetime.now(UTC)
    caller_key = f"{caller.tenant_id}:{caller.kind}:{caller.subject_id}"
    locked = LOCKED_OCCURRENCE[caller.context]
    at = LOCKED_AT
    async with pool(request).acquire() as connection:
        if key is not None:
            # One statement, committed on its own: a concurrent retry sees the claim at once.
            digest = hashlib.sha256(b"POST /v1/completions\n" + body_bytes).hexdigest()
            claimed = await connection.fetchval(
                CLAIM_IDEMPOTENCY_KEY.sql,
                *args(
                    CLAIM_IDEMPOTENCY_KEY,
                    claimant=caller_key,
                    claimed_key=key,
                    digest=digest,
                    now=now,
                    expires_at=now + timedelta(hours=24),
                ),
            )
            if claimed is None:
                return conflict()
        # The locked read opens the transaction: its row lock is held until COMMIT.
        async with connection.transaction(isolation="read_committed"):
            row = await connection.fetchrow(
                locked.sql,
                *args(
                    locked,
                    occurrence_id=body["occurrence_id"],
                    tenant_id=caller.tenant_id,
                    subject_id=caller.subject_id,
                ),
            )
            if row is None:
                return not_found()
            occurrence_id = row[at["occurrences.id"]]
            assignment_id = row[at["occurrences.assignment_id"]]
            client_id = row[at["occurrences.client_id"]]
            kind = row[at["assignments.kind"]]
            completed_at = now
            status = body["status"]
            answers = body.get("answers")
            score, severity = _measure(kind, answers) if status == "done" else (None, None)
            content = {field: body.get(field) for field in CONTENT_FIELDS}
            content["barriers"] = content["barriers"] or []
            completion_id = new_id("cmp")
            created_at = datetime.now(UTC)
            late = completed_at > row[at["occurrences.closes_at"]]
            time_zone = body.get("time_zone") or row[at["clients.time_zone"]]
            try:
                await connection.execute(
                    INSERT_COMPLETION, completion_id, row[at["occurrences.tenant_id"]],
                    occurrence_id, assignment_id, client_id, kind, status, json.dumps(answers),
                    json.dumps(content["barriers"]), content["barrier_note"],
                    content["helpfulness"], content["effort"], content["minutes_spent"],
                    content["reflection"], completed_at, time_zone, now, late, caller.kind,
                    caller.subject_id, caller.kind == "clinician", score, severity, False, "[]",
                    None, None, None, created_at, created_at, 1,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                return conflict()
            await connection.execute(
                INSERT_REVISION, new_id("cmr"), completion_id, 1, json.dumps(content), caller.kind,
                caller.subject_id, now,
            )  # fmt: skip
            subject = {
                "completion_id": completion_id,
                "occurrence_id": occurrence_id,
                "assignment_id": assignment_id,
            }
            await connection.execute(
                INSERT_EVENT, new_id("evt"), caller.tenant_id, "completion.created", now,
                client_id, json.dumps(subject), "[]", None, None, None,
            )  # fmt: skip
            await connection.execute(
                MOVE_OCCURRENCE.sql,
                *args(
                    MOVE_OCCURRENCE,
                    occurrence_id=occurrence_id,
                    status=OCCURRENCE_STATUS[status],
                    now=now,
                ),
            )
            policy = json_value(row[at["assignments.reminder_policy"]]) or {}
            if policy.get("only_if_not_done", True):
                await connection.execute(
                    CANCEL_REMINDERS.sql,
                    *args(CANCEL_REMINDERS, of=occurrence_id, reason="resolved", now=now),
                )
            finished_done = False
            if row[at["assignments.status"]] == "active" and row[at["assignments.series_complete"]]:
                total, unresolved, done = await connection.fetchrow(
                    SERIES_RESOLUTION.sql, *args(SERIES_RESOLUTION, assignment_id=assignment_id)
                )
                if total and not unresolved:
                    ending = await connection.fetchrow(ASSIGNMENT_BY_ID, assignment_id)
                    await connection.execute(
                        FINISH_ASSIGNMENT, "completed" if done else "expired", now, now,
                        ending["version"] + 1, assignment_id, ending["version"],
                    )  # fmt: skip
                    finished_done = bool(done)
            await record_audit(
                connection,
                [caller.audit_row(now, "create", "completion", client_id, completion_id)],
            )
            payload = {
                "id": completion_id,
                "occurrence_id": occurrence_id,
                "assignment_id": assignment_id,
                "client_id": client_id,
                "kind": kind,
                "status": status,
                "answers": answers,
                "barriers": content["barriers"],
                "barrier_note": content["barrier_note"],
                "helpfulness": content["helpfulness"],
                "effort": content["effort"],
                "minutes_spent": content["minutes_spent"],
                "reflection": content["reflection"],
                "completed_at": iso(completed_at),
                "time_zone": time_zone,
                "received_at": iso(now),
                "late": late,
                "recorded_by": caller.kind,
                "in_session": caller.kind == "clinician",
                "measure": {"score": score, "severity": severity} if score is not None else None,
                "distress_flagged": False,
                "distress_reasons": [],
                "review": None,
                "revision": 1,
                "editable_until": iso(now + timedelta(hours=24)),
                "created_at": iso(created_at),
                "updated_at": iso(created_at),
            }
            body_out = dumps(payload)
            etag = f'"{completion_id}.1"'
            if key is not None:
                await connection.execute(
                    STORE_IDEMPOTENT_RESPONSE.sql,
                    *args(
                        STORE_IDEMPOTENT_RESPONSE,
                        claimant=caller_key,
                        claimed_key=key,
                        status=201,
                        body=body_out,
                        headers={"content-type": "application/json", "etag": etag},
                    ),
                )
            if finished_done:  # the ORM flushes this event at COMMIT, as in the service
                await connection.execute(
                    INSERT_EVENT, new_id("evt"), caller.tenant_id, "assignment.completed", now,
                    client_id, json.dumps({"assignment_id": assignment_id}), "[]", None, None,
                    None,
                )  # fmt: skip
    return Response(body_out, 201, headers={"etag": etag}, media_type="application/json")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: Any, count: int) -> float | None:
    return round(float(total) / count, 2) if count else None


async def caseload_of(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    clinician_id = request.path_params["clinician_id"]
    who = {
        "tenant_id": caller.tenant_id,
        "subject_id": caller.subject_id,
        "clinician_id": clinician_id,
    }
    recent_from = now - timedelta(days=7)
    visible = VISIBLE_CLINICIAN[caller.context]
    clients_of = CASELOAD_CLIENTS[caller.context]
    figures_of = CASELOAD_OCCURRENCES[caller.context]
    async with pool(request).acquire() as connection:
        found = await connection.fetch(visible.sql, *args(visible, **who))
        if not found:
            return not_found()
        clients = await connection.fetch(
            clients_of.sql,
            *args(
                clients_of,
                **who,
                recent_from=recent_from,
                previous_from=recent_from - timedelta(days=7),
            ),
        )
        figures = await connection.fetch(
            figures_of.sql, *args(figures_of, **who, now=now, since=now - timedelta(days=28))
        )
        occurrences = {
            client_id: (_ratio(int(n_done), int(n_counted)), int(n_missed))
            for client_id, n_counted, n_done, n_missed in figures
        }
        rows = []
        for (
            client_id,
            external_id,
            next_session_at,
            last_done_at,
            flags,
            recent_sum,
            recent_n,
            previous_sum,
            previous_n,
        ) in clients:
            rate, missed = occurrences.get(client_id, (None, 0))
            recent = _mean(recent_sum, int(recent_n))
            previous = _mean(previous_sum, int(previous_n))
            trend = (
                round(recent - previous, 2) if recent is not None and previous is not None else None
            )
            rows.append(
                {
                    "client_id": client_id,
                    "external_id": external_id,
                    "open_distress_flags": int(flags),
                    "missed_in_a_row": missed,
                    "helpfulness_recent": recent,
                    "helpfulness_previous": previous,
                    "helpfulness_trend": trend,
                    "completion_rate_28d": rate,
                    "last_completed_at": iso(last_done_at),
                    "next_session_at": iso(next_session_at),
                }
            )
        rows.sort(
            key=lambda r: (
                -r["open_distress_flags"],
                -r["missed_in_a_row"],
                r["helpfulness_trend"] if r["helpfulness_trend"] is not None else 0.0,
                r["client_id"],
            )
        )
        await record_audit(
            connection,
            [caller.audit_row(now, "list", "caseload", r["client_id"], clinician_id) for r in rows],
        )
    return respond({"clinician_id": clinician_id, "as_of": iso(now), "clients": rows})


async def ready(_request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


async def keep_session(_connection: asyncpg.Connection) -> None:
    """On release, only what SQLAlchemy's pool does on return: a ROLLBACK if a transaction is
    open (asyncpg does that much before calling this). asyncpg's default reset would send
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`, a round trip per
    request that the service does not make."""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    size = int(os.environ.get("CEILING_POOL_SIZE", "32"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["CEILING_DSN"], min_size=size, max_size=size, reset=keep_session
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/readyz", ready),
        Route("/v1/me/homework", my_homework),
        Route("/v1/assignments", list_assignments),
        Route("/v1/assignments/{assignment_id}", get_assignment),
        Route("/v1/completions", create_completion, methods=["POST"]),
        Route("/v1/clinicians/{clinician_id}/caseload", caseload_of),
    ],
    lifespan=lifespan,
)
