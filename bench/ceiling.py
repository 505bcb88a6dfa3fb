"""The ceiling for bench/load.py: the same SQL as the service, with nothing else around it.

    CEILING_DSN=postgresql://... CEILING_POOL_SIZE=32 \\
        .venv/bin/uvicorn bench.ceiling:app --port 8802 --workers 1 --no-access-log

A bare Starlette app on an asyncpg pool (min = max = CEILING_POOL_SIZE), served by one uvicorn
worker like the service (uvloop and httptools, as uvicorn picks them for both). For each
benchmark scenario it sends PostgreSQL the same statements as the service does, with the same
text and parameters, in the same order (captured from the service with HOMEWORK_DB_ECHO=true;
they are the constants below), and answers the same JSON shape, the same status and the ETag.

What it does:
- reads the caller (tenant, kind, subject, OAuth client, token id) from the bearer token's
  payload, base64-decoded: the ids the SQL needs;
- runs the service's statements: visibility filters, the audit INSERTs (executemany, as the
  service), and for the completion POST the Idempotency-Key claim in its own transaction and the
  change in a second one (the same two transactions as the service, with FOR UPDATE);
- computes what the response needs from the rows (the local day's bounds, the caseload's
  ratios, streak-free figures and ordering, `late`, PHQ-9/GAD-7 scores) and serialises it with
  the standard library's json.

What it does not do, on purpose (that is the difference being measured):
- no JWT signature, expiry, audience or scope check;
- no validation of the query string, path or body (no pydantic, no response-schema validation
  of the answers: the template version is still read, as the service reads it);
- no ORM: rows are tuples, not entities, and no unit of work, identity map or flush ordering;
- no BEGIN/COMMIT around the read scenarios (each statement commits on its own; a read and its
  audit row need no atomicity), no pool pre-ping, no SQLAlchemy pool;
- no middleware (request id header, access log, body-size limit), no error handlers beyond 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import time
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

# --- The service's statements, verbatim -------------------------------------------------------

CLIENT_BY_ID = """SELECT clients.id, clients.tenant_id, clients.external_id, clients.display_name, clients.time_zone, clients.locale, clients.quiet_hours_start, clients.quiet_hours_end, clients.next_session_at, clients.reminders_muted, clients.max_reminders_per_day, clients.created_at, clients.updated_at, clients.version 
FROM clients 
WHERE clients.id = $1::VARCHAR AND clients.tenant_id = $2::VARCHAR"""  # noqa: E501, W291

HOMEWORK_TODAY = """SELECT occurrences.id, occurrences.tenant_id, occurrences.assignment_id, occurrences.client_id, occurrences.ordinal, occurrences.due_at, occurrences.opens_at, occurrences.closes_at, occurrences.local_due, occurrences.time_zone, occurrences.status, occurrences.created_at, occurrences.updated_at, assignments.id AS id_1, assignments.tenant_id AS tenant_id_1, assignments.client_id AS client_id_1, assignments.clinician_id, assignments.template_id, assignments.template_version_id, assignments.kind, assignments.title, assignments.instructions, assignments.purpose, assignments.difficulty_step, assignments.status AS status_1, assignments.schedule_type, assignments.rrule, assignments.start_local, assignments.starts_at, assignments.due_at AS due_at_1, assignments.opens_before_minutes, assignments.grace_minutes, assignments.materialized_until, assignments.series_complete, assignments.ordinal_base, assignments.reminder_policy, assignments.cancelled_at, assignments.ended_at, assignments.created_at AS created_at_1, assignments.updated_at AS updated_at_1, assignments.version, template_versions.id AS id_2, template_versions.template_id AS template_id_1, template_versions.number, template_versions.name, template_versions.instructions AS instructions_1, template_versions.purpose AS purpose_1, template_versions.estimated_minutes, template_versions.response_schema, template_versions.default_reminder_local_times, template_versions.created_at AS created_at_2 
FROM occurrences JOIN assignments ON assignments.id = occurrences.assignment_id JOIN template_versions ON template_versions.id = assignments.template_version_id 
WHERE occurrences.client_id = $1::VARCHAR AND occurrences.closes_at > $2::TIMESTAMP WITH TIME ZONE AND occurrences.opens_at < $3::TIMESTAMP WITH TIME ZONE AND occurrences.status IN ($5::VARCHAR, $6::VARCHAR, $7::VARCHAR, $8::VARCHAR, $9::VARCHAR) AND assignments.status = $4::VARCHAR ORDER BY occurrences.due_at"""  # noqa: E501, W291

INSERT_AUDIT = """INSERT INTO audit_events (id, tenant_id, occurred_at, actor_kind, actor_id, client_app_id, token_id, client_id, action, resource_type, resource_id, request_id, ip) VALUES ($1::VARCHAR, $2::VARCHAR, $3::TIMESTAMP WITH TIME ZONE, $4::VARCHAR, $5::VARCHAR, $6::VARCHAR, $7::VARCHAR, $8::VARCHAR, $9::VARCHAR, $10::VARCHAR, $11::VARCHAR, $12::VARCHAR, $13::VARCHAR)"""  # noqa: E501

_ASSIGNMENT_COLUMNS = "assignments.id, assignments.tenant_id, assignments.client_id, assignments.clinician_id, assignments.template_id, assignments.template_version_id, assignments.kind, assignments.title, assignments.instructions, assignments.purpose, assignments.difficulty_step, assignments.status, assignments.schedule_type, assignments.rrule, assignments.start_local, assignments.starts_at, assignments.due_at, assignments.opens_before_minutes, assignments.grace_minutes, assignments.materialized_until, assignments.series_complete, assignments.ordinal_base, assignments.reminder_policy, assignments.cancelled_at, assignments.ended_at, assignments.created_at, assignments.updated_at, assignments.version"  # noqa: E501

VISIBLE_ASSIGNMENT_BY_ID = f"""SELECT {_ASSIGNMENT_COLUMNS} 
FROM assignments 
WHERE assignments.tenant_id = $1::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = assignments.client_id AND care_team_members.clinician_id = $2::VARCHAR)) AND assignments.id = $3::VARCHAR"""  # noqa: E501, W291

OCCURRENCES_OF_ASSIGNMENT = """SELECT occurrences.id, occurrences.tenant_id, occurrences.assignment_id, occurrences.client_id, occurrences.ordinal, occurrences.due_at, occurrences.opens_at, occurrences.closes_at, occurrences.local_due, occurrences.time_zone, occurrences.status, occurrences.created_at, occurrences.updated_at 
FROM occurrences 
WHERE occurrences.assignment_id = $1::VARCHAR ORDER BY occurrences.ordinal"""  # noqa: E501, W291

VISIBLE_ASSIGNMENTS_OF_CLIENT = f"""SELECT {_ASSIGNMENT_COLUMNS} 
FROM assignments 
WHERE assignments.tenant_id = $1::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = assignments.client_id AND care_team_members.clinician_id = $2::VARCHAR)) AND assignments.client_id = $3::VARCHAR ORDER BY assignments.id DESC 
 LIMIT $4::INTEGER"""  # noqa: E501, W291

IDEMPOTENCY_KEY_FOR_UPDATE = """SELECT idempotency_keys.caller, idempotency_keys.key, idempotency_keys.request_hash, idempotency_keys.state, idempotency_keys.response_status, idempotency_keys.response_body, idempotency_keys.response_headers, idempotency_keys.created_at, idempotency_keys.expires_at 
FROM idempotency_keys 
WHERE idempotency_keys.caller = $1::VARCHAR AND idempotency_keys.key = $2::VARCHAR FOR UPDATE"""  # noqa: E501, W291

INSERT_IDEMPOTENCY_KEY = """INSERT INTO idempotency_keys (caller, key, request_hash, state, response_status, response_body, created_at, expires_at) VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, $5::INTEGER, $6::BYTEA, $7::TIMESTAMP WITH TIME ZONE, $8::TIMESTAMP WITH TIME ZONE)"""  # noqa: E501

VISIBLE_OCCURRENCE_FOR_UPDATE = """SELECT occurrences.id, occurrences.tenant_id, occurrences.assignment_id, occurrences.client_id, occurrences.ordinal, occurrences.due_at, occurrences.opens_at, occurrences.closes_at, occurrences.local_due, occurrences.time_zone, occurrences.status, occurrences.created_at, occurrences.updated_at 
FROM occurrences 
WHERE occurrences.tenant_id = $1::VARCHAR AND occurrences.client_id = $2::VARCHAR AND occurrences.id = $3::VARCHAR FOR UPDATE"""  # noqa: E501, W291

ASSIGNMENT_BY_ID = f"""SELECT {_ASSIGNMENT_COLUMNS} 
FROM assignments 
WHERE assignments.id = $1::VARCHAR"""  # noqa: W291

TEMPLATE_VERSION_BY_ID = """SELECT template_versions.id, template_versions.template_id, template_versions.number, template_versions.name, template_versions.instructions, template_versions.purpose, template_versions.estimated_minutes, template_versions.response_schema, template_versions.default_reminder_local_times, template_versions.created_at 
FROM template_versions 
WHERE template_versions.id = $1::VARCHAR"""  # noqa: E501, W291

INSERT_COMPLETION = """INSERT INTO completions (id, tenant_id, occurrence_id, assignment_id, client_id, kind, status, answers, barriers, barrier_note, helpfulness, effort, minutes_spent, reflection, completed_at, time_zone, received_at, late, recorded_by_kind, recorded_by_id, in_session, score, severity, distress_flagged, distress_reasons, feedback, reviewed_by, reviewed_at, created_at, updated_at, version) VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, $5::VARCHAR, $6::VARCHAR, $7::VARCHAR, $8::JSON, $9::JSON, $10::VARCHAR, $11::INTEGER, $12::INTEGER, $13::INTEGER, $14::VARCHAR, $15::TIMESTAMP WITH TIME ZONE, $16::VARCHAR, $17::TIMESTAMP WITH TIME ZONE, $18::BOOLEAN, $19::VARCHAR, $20::VARCHAR, $21::BOOLEAN, $22::INTEGER, $23::VARCHAR, $24::BOOLEAN, $25::JSON, $26::VARCHAR, $27::VARCHAR, $28::TIMESTAMP WITH TIME ZONE, $29::TIMESTAMP WITH TIME ZONE, $30::TIMESTAMP WITH TIME ZONE, $31::INTEGER)"""  # noqa: E501

UPDATE_OCCURRENCE_STATUS = """UPDATE occurrences SET status=$1::VARCHAR, updated_at=$2::TIMESTAMP WITH TIME ZONE WHERE occurrences.id = $3::VARCHAR"""  # noqa: E501

INSERT_REVISION = """INSERT INTO completion_revisions (id, completion_id, number, snapshot, recorded_by_kind, recorded_by_id, created_at) VALUES ($1::VARCHAR, $2::VARCHAR, $3::INTEGER, $4::JSON, $5::VARCHAR, $6::VARCHAR, $7::TIMESTAMP WITH TIME ZONE)"""  # noqa: E501

CANCEL_REMINDERS = """UPDATE reminders SET state=$1::VARCHAR, reason=$2::VARCHAR, updated_at=$3::TIMESTAMP WITH TIME ZONE, version=(reminders.version + $4::INTEGER) WHERE reminders.occurrence_id = $5::VARCHAR AND reminders.state IN ($6::VARCHAR, $7::VARCHAR)"""  # noqa: E501

INSERT_EVENT = """INSERT INTO events (id, tenant_id, type, occurred_at, client_id, subject, changed_fields, sequence, fanned_out_at, endpoint_id) VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::TIMESTAMP WITH TIME ZONE, $5::VARCHAR, $6::JSON, $7::JSON, $8::INTEGER, $9::TIMESTAMP WITH TIME ZONE, $10::VARCHAR)"""  # noqa: E501

FINISH_ASSIGNMENT = """UPDATE assignments SET status=$1::VARCHAR, ended_at=$2::TIMESTAMP WITH TIME ZONE, updated_at=$3::TIMESTAMP WITH TIME ZONE, version=$4::INTEGER WHERE assignments.id = $5::VARCHAR AND assignments.version = $6::INTEGER"""  # noqa: E501

STORE_IDEMPOTENT_RESPONSE = """UPDATE idempotency_keys SET state=$1::VARCHAR, response_status=$2::INTEGER, response_body=$3::BYTEA, response_headers=$4::JSON WHERE idempotency_keys.caller = $5::VARCHAR AND idempotency_keys.key = $6::VARCHAR"""  # noqa: E501

VISIBLE_CLINICIAN = """SELECT clinicians.id 
FROM clinicians 
WHERE clinicians.tenant_id = $1::VARCHAR AND (clinicians.id = $2::VARCHAR OR (EXISTS (SELECT * 
FROM care_team_members AS mine, care_team_members AS theirs 
WHERE mine.clinician_id = $3::VARCHAR AND theirs.client_id = mine.client_id AND theirs.clinician_id = clinicians.id))) AND clinicians.id = $4::VARCHAR AND clinicians.id = $5::VARCHAR"""  # noqa: E501, W291

CASELOAD_CLIENTS = """SELECT clients.id, clients.external_id, clients.next_session_at, (SELECT max(completions.completed_at) AS max_1 
FROM completions 
WHERE completions.tenant_id = $1::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = completions.client_id AND care_team_members.clinician_id = $2::VARCHAR)) AND completions.client_id = clients.id AND completions.status IN ($7::VARCHAR, $8::VARCHAR)) AS anon_1 
FROM clients 
WHERE clients.tenant_id = $3::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = clients.id AND care_team_members.clinician_id = $4::VARCHAR)) AND clients.id IN (SELECT care_team_members.client_id 
FROM care_team_members 
WHERE care_team_members.tenant_id = $5::VARCHAR AND care_team_members.clinician_id = $6::VARCHAR)"""  # noqa: E501, W291

CASELOAD_COMPLETIONS = """SELECT completions.client_id, sum(CASE WHEN (completions.distress_flagged IS true AND completions.reviewed_at IS NULL) THEN $1::INTEGER ELSE $2::INTEGER END) AS sum_1, sum(CASE WHEN (completions.completed_at >= $3::TIMESTAMP WITH TIME ZONE) THEN completions.helpfulness END) AS sum_2, count(CASE WHEN (completions.completed_at >= $3::TIMESTAMP WITH TIME ZONE) THEN completions.helpfulness END) AS count_1, sum(CASE WHEN (completions.completed_at >= $4::TIMESTAMP WITH TIME ZONE AND completions.completed_at < $5::TIMESTAMP WITH TIME ZONE) THEN completions.helpfulness END) AS sum_3, count(CASE WHEN (completions.completed_at >= $4::TIMESTAMP WITH TIME ZONE AND completions.completed_at < $5::TIMESTAMP WITH TIME ZONE) THEN completions.helpfulness END) AS count_2 
FROM completions 
WHERE completions.tenant_id = $6::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = completions.client_id AND care_team_members.clinician_id = $7::VARCHAR)) AND completions.client_id IN (SELECT care_team_members.client_id 
FROM care_team_members 
WHERE care_team_members.tenant_id = $8::VARCHAR AND care_team_members.clinician_id = $9::VARCHAR) AND (completions.distress_flagged IS true AND completions.reviewed_at IS NULL OR completions.completed_at >= $10::TIMESTAMP WITH TIME ZONE) GROUP BY completions.client_id"""  # noqa: E501, W291

CASELOAD_OCCURRENCES = """SELECT occurrences.client_id, sum(CASE WHEN (occurrences.due_at < $1::TIMESTAMP WITH TIME ZONE AND (occurrences.status IN ($19::VARCHAR, $20::VARCHAR, $21::VARCHAR, $22::VARCHAR) OR occurrences.status IN ($23::VARCHAR, $24::VARCHAR, $25::VARCHAR) AND occurrences.closes_at <= $2::TIMESTAMP WITH TIME ZONE)) THEN $3::INTEGER ELSE $4::INTEGER END) AS sum_1, sum(CASE WHEN (occurrences.due_at < $1::TIMESTAMP WITH TIME ZONE AND occurrences.status IN ($26::VARCHAR, $27::VARCHAR)) THEN $5::INTEGER ELSE $6::INTEGER END) AS sum_2, sum(CASE WHEN ((occurrences.status IN ($28::VARCHAR, $29::VARCHAR, $30::VARCHAR, $31::VARCHAR) OR occurrences.status IN ($32::VARCHAR, $33::VARCHAR, $34::VARCHAR) AND occurrences.closes_at <= $7::TIMESTAMP WITH TIME ZONE) AND (occurrences.status NOT IN ($35::VARCHAR, $36::VARCHAR)) AND (last_done.due_at IS NULL OR occurrences.due_at > last_done.due_at)) THEN $8::INTEGER ELSE $9::INTEGER END) AS sum_3 
FROM occurrences LEFT OUTER JOIN (SELECT occurrences.client_id AS client_id, max(occurrences.due_at) AS due_at 
FROM occurrences 
WHERE occurrences.tenant_id = $10::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = occurrences.client_id AND care_team_members.clinician_id = $11::VARCHAR)) AND occurrences.client_id IN (SELECT care_team_members.client_id 
FROM care_team_members 
WHERE care_team_members.tenant_id = $12::VARCHAR AND care_team_members.clinician_id = $13::VARCHAR) AND occurrences.due_at >= $14::TIMESTAMP WITH TIME ZONE AND occurrences.status IN ($37::VARCHAR, $38::VARCHAR) GROUP BY occurrences.client_id) AS last_done ON last_done.client_id = occurrences.client_id 
WHERE occurrences.tenant_id = $15::VARCHAR AND (EXISTS (SELECT * 
FROM care_team_members 
WHERE care_team_members.client_id = occurrences.client_id AND care_team_members.clinician_id = $16::VARCHAR)) AND occurrences.client_id IN (SELECT care_team_members.client_id 
FROM care_team_members 
WHERE care_team_members.tenant_id = $12::VARCHAR AND care_team_members.clinician_id = $13::VARCHAR) AND occurrences.due_at >= $17::TIMESTAMP WITH TIME ZONE AND occurrences.status != $18::VARCHAR GROUP BY occurrences.client_id"""  # noqa: E501, W291

RESOLVED = ("completed", "partial", "missed", "declined")
UNRESOLVED = ("upcoming", "open", "started")
DONE = ("completed", "partial")
ACTIONABLE = ("open", "started", "upcoming", "completed", "partial")
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

# --- Small helpers, each the least the response needs ------------------------------------------

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rest = divmod(value, 32)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """The service's id format (time-ordered, 80 random bits)."""
    return f"{prefix}_{_encode(time.time_ns() // 1_000_000, 10)}{_encode(secrets.randbits(80), 16)}"


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


class Caller:
    """Who calls, from the token's payload. NOT verified: the ceiling trusts the token."""

    __slots__ = ("client_app_id", "ip", "kind", "request_id", "subject_id", "tenant_id", "token_id")

    def __init__(self, request: Request) -> None:
        token = request.headers.get("authorization", "").partition(" ")[2]
        try:
            part = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (IndexError, ValueError, binascii.Error) as exc:
            raise PermissionError from exc
        self.tenant_id: str = claims["tenant_id"]
        self.kind: str = claims["subject_kind"]
        self.subject_id: str = claims["sub"]
        self.client_app_id: str = claims["client_id"]
        self.token_id: str = claims["jti"]
        self.request_id = uuid.uuid4().hex
        self.ip = request.client.host if request.client else None

    def audit_row(
        self, now: datetime, action: str, kind: str, client_id: str, resource_id: str
    ) -> tuple[Any, ...]:
        return (
            new_id("aud"),
            self.tenant_id,
            now,
            self.kind,
            self.subject_id,
            self.client_app_id,
            self.token_id,
            client_id,
            action,
            kind,
            resource_id,
            self.request_id,
            self.ip,
        )


def occurrence_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "assignment_id": row["assignment_id"],
        "ordinal": row["ordinal"],
        "status": row["status"],
        "due_at": iso(row["due_at"]),
        "opens_at": iso(row["opens_at"]),
        "closes_at": iso(row["closes_at"]),
        "local_due": row["local_due"],
        "time_zone": row["time_zone"],
    }


def assignment_json(row: Any, occurrences: list[Any] | None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "client_id": row["client_id"],
        "clinician_id": row["clinician_id"],
        "template": {"id": row["template_id"], "version_id": row["template_version_id"]},
        "kind": row["kind"],
        "title": row["title"],
        "instructions": row["instructions"],
        "purpose": row["purpose"],
        "difficulty_step": row["difficulty_step"],
        "status": row["status"],
        "schedule": {
            "type": row["schedule_type"],
            "rrule": row["rrule"],
            "start_local": row["start_local"],
            "due_at": iso(row["due_at"]),
        },
        "window": {
            "opens_before_minutes": row["opens_before_minutes"],
            "grace_minutes": row["grace_minutes"],
        },
        "reminders": json_value(row["reminder_policy"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "occurrences": [occurrence_json(o) for o in occurrences]
        if occurrences is not None
        else None,
    }


def pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool  # type: ignore[no-any-return]


# --- The scenarios -------------------------------------------------------------------------------


async def my_homework(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    async with pool(request).acquire() as connection:
        client = await connection.fetchrow(CLIENT_BY_ID, caller.subject_id, caller.tenant_id)
        if client is None:
            return not_found()
        zone = ZoneInfo(client["time_zone"])
        local_date = now.astimezone(zone).date()
        day_start = datetime.combine(local_date, day_time(), zone).astimezone(UTC)
        day_end = datetime.combine(local_date + timedelta(days=1), day_time(), zone).astimezone(UTC)
        rows = await connection.fetch(
            HOMEWORK_TODAY, client["id"], day_start, day_end, "active", *ACTIONABLE
        )
        audit = [caller.audit_row(now, "list", "occurrence", client["id"], r["id"]) for r in rows]
        if audit:
            await connection.executemany(INSERT_AUDIT, audit)
    items = [
        {
            "occurrence": occurrence_json(r),
            "assignment_id": r["id_1"],
            "kind": r["kind"],
            "title": r["title"],
            "instructions": r["instructions"],
            "purpose": r["purpose"],
            "difficulty_step": r["difficulty_step"],
            "estimated_minutes": r["estimated_minutes"],
            "response_schema": json_value(r["response_schema"]),
        }
        for r in rows
    ]
    return respond(
        {"date": local_date.isoformat(), "time_zone": client["time_zone"], "items": items}
    )


async def get_assignment(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    assignment_id = request.path_params["assignment_id"]
    async with pool(request).acquire() as connection:
        row = await connection.fetchrow(
            VISIBLE_ASSIGNMENT_BY_ID, caller.tenant_id, caller.subject_id, assignment_id
        )
        if row is None:
            return not_found()
        await connection.executemany(
            INSERT_AUDIT, [caller.audit_row(now, "read", "assignment", row["client_id"], row["id"])]
        )
        occurrences = await connection.fetch(OCCURRENCES_OF_ASSIGNMENT, row["id"])
    return respond(assignment_json(row, occurrences), etag=f'"{row["id"]}.{row["version"]}"')


async def list_assignments(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    client_id = request.query_params["client_id"]
    limit = 50
    async with pool(request).acquire() as connection:
        rows = await connection.fetch(
            VISIBLE_ASSIGNMENTS_OF_CLIENT, caller.tenant_id, caller.subject_id, client_id, limit + 1
        )
        page = rows[:limit]
        if page:
            await connection.executemany(
                INSERT_AUDIT,
                [
                    caller.audit_row(now, "list", "assignment", r["client_id"], r["id"])
                    for r in page
                ],
            )
    next_cursor = None
    if len(rows) > limit:
        raw = f"v1:{page[-1]['id']}".encode()
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
    async with pool(request).acquire() as connection:
        if key is not None:
            digest = hashlib.sha256(b"POST /v1/completions\n" + body_bytes).hexdigest()
            async with connection.transaction():
                existing = await connection.fetchrow(IDEMPOTENCY_KEY_FOR_UPDATE, caller_key, key)
                if existing is not None:
                    return Response(b'{"status":409}', 409, media_type="application/problem+json")
                await connection.execute(
                    INSERT_IDEMPOTENCY_KEY,
                    caller_key,
                    key,
                    digest,
                    "in_flight",
                    None,
                    None,
                    now,
                    now + timedelta(hours=24),
                )
        async with connection.transaction():
            occurrence = await connection.fetchrow(
                VISIBLE_OCCURRENCE_FOR_UPDATE, caller.tenant_id, caller.subject_id,
                body["occurrence_id"],
            )  # fmt: skip
            if occurrence is None:
                return not_found()
            assignment = await connection.fetchrow(ASSIGNMENT_BY_ID, occurrence["assignment_id"])
            await connection.fetchrow(TEMPLATE_VERSION_BY_ID, assignment["template_version_id"])
            completed_at = now
            status = body["status"]
            answers = body.get("answers")
            score, severity = (
                _measure(assignment["kind"], answers) if status == "done" else (None, None)
            )
            content = {field: body.get(field) for field in CONTENT_FIELDS}
            content["barriers"] = content["barriers"] or []
            completion_id = new_id("cmp")
            created_at = datetime.now(UTC)
            late = completed_at > occurrence["closes_at"]
            time_zone = body.get("time_zone")
            try:
                await connection.execute(
                    INSERT_COMPLETION, completion_id, caller.tenant_id, occurrence["id"],
                    occurrence["assignment_id"], occurrence["client_id"], assignment["kind"],
                    status, json.dumps(answers), json.dumps(content["barriers"]),
                    content["barrier_note"], content["helpfulness"], content["effort"],
                    content["minutes_spent"], content["reflection"], completed_at, time_zone, now,
                    late, caller.kind, caller.subject_id, caller.kind == "clinician", score,
                    severity, False, "[]", None, None, None, created_at, created_at, 1,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                return Response(b'{"status":409}', 409, media_type="application/problem+json")
            await connection.execute(
                UPDATE_OCCURRENCE_STATUS, OCCURRENCE_STATUS[status], now, occurrence["id"]
            )
            await connection.execute(
                INSERT_REVISION, new_id("cmr"), completion_id, 1, json.dumps(content), caller.kind,
                caller.subject_id, now,
            )  # fmt: skip
            policy = json_value(assignment["reminder_policy"]) or {}
            if policy.get("only_if_not_done", True):
                await connection.execute(
                    CANCEL_REMINDERS, "cancelled", "resolved", now, 1, occurrence["id"],
                    "scheduled", "snoozed",
                )  # fmt: skip
            subject = {
                "completion_id": completion_id,
                "occurrence_id": occurrence["id"],
                "assignment_id": assignment["id"],
            }
            await connection.execute(
                INSERT_EVENT, new_id("evt"), caller.tenant_id, "completion.created", now,
                occurrence["client_id"], json.dumps(subject), "[]", None, None, None,
            )  # fmt: skip
            if assignment["status"] == "active" and assignment["series_complete"]:
                statuses = {
                    r["status"]
                    for r in await connection.fetch(OCCURRENCES_OF_ASSIGNMENT, assignment["id"])
                }
                if statuses and not statuses & set(UNRESOLVED):
                    done = bool(statuses & set(DONE))
                    await connection.execute(
                        FINISH_ASSIGNMENT, "completed" if done else "expired", now, now,
                        assignment["version"] + 1, assignment["id"], assignment["version"],
                    )  # fmt: skip
                    if done:
                        await connection.execute(
                            INSERT_EVENT, new_id("evt"), caller.tenant_id,
                            "assignment.completed", now, occurrence["client_id"],
                            json.dumps({"assignment_id": assignment["id"]}), "[]", None, None,
                            None,
                        )  # fmt: skip
            await connection.executemany(
                INSERT_AUDIT,
                [caller.audit_row(now, "create", "completion", occurrence["client_id"],
                                  completion_id)],
            )  # fmt: skip
            payload = {
                "id": completion_id,
                "occurrence_id": occurrence["id"],
                "assignment_id": occurrence["assignment_id"],
                "client_id": occurrence["client_id"],
                "kind": assignment["kind"],
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
                    STORE_IDEMPOTENT_RESPONSE, "done", 201, body_out,
                    json.dumps({"content-type": "application/json", "etag": etag}), caller_key,
                    key,
                )  # fmt: skip
    return Response(body_out, 201, headers={"etag": etag}, media_type="application/json")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: Any, count: int) -> float | None:
    return round(float(total) / count, 2) if count else None


async def caseload(request: Request) -> Response:
    caller = Caller(request)
    now = datetime.now(UTC)
    clinician_id = request.path_params["clinician_id"]
    tenant, me = caller.tenant_id, caller.subject_id
    recent_from = now - timedelta(days=7)
    previous_from = recent_from - timedelta(days=7)
    since = now - timedelta(days=28)
    async with pool(request).acquire() as connection:
        found = await connection.fetchval(VISIBLE_CLINICIAN, tenant, me, me, clinician_id, me)
        if found is None:
            return not_found()
        clients = await connection.fetch(
            CASELOAD_CLIENTS, tenant, me, tenant, me, tenant, clinician_id, "done", "partial"
        )
        completion_rows = await connection.fetch(
            CASELOAD_COMPLETIONS, 1, 0, recent_from, previous_from, recent_from, tenant, me,
            tenant, clinician_id, previous_from,
        )  # fmt: skip
        occurrence_rows = await connection.fetch(
            CASELOAD_OCCURRENCES, now, now, 1, 0, 1, 0, now, 1, 0, tenant, me, tenant,
            clinician_id, since, tenant, me, since, "cancelled", *RESOLVED, *UNRESOLVED, *DONE,
            *RESOLVED, *UNRESOLVED, *DONE, *DONE,
        )  # fmt: skip
        by_client = {r[0]: r for r in completion_rows}
        occurrences = {r[0]: (_ratio(int(r[2]), int(r[1])), int(r[3])) for r in occurrence_rows}
        rows = []
        for client_id, external_id, next_session_at, last_done_at in clients:
            figures = by_client.get(client_id)
            flags, recent_sum, recent_n, previous_sum, previous_n = (
                figures[1:] if figures else (0, None, 0, None, 0)
            )
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
        await connection.executemany(
            INSERT_AUDIT,
            [caller.audit_row(now, "list", "caseload", r["client_id"], clinician_id) for r in rows],
        )
    return respond({"clinician_id": clinician_id, "as_of": iso(now), "clients": rows})


async def ready(_request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    size = int(os.environ.get("CEILING_POOL_SIZE", "32"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["CEILING_DSN"], min_size=size, max_size=size
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
        Route("/v1/clinicians/{clinician_id}/caseload", caseload),
    ],
    lifespan=lifespan,
)
