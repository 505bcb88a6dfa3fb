"""`Idempotency-Key` on every POST: a retried request gets the first response, not a second
effect.

- The key is kept per caller (tenant and subject), after the token is verified, so a caller can
  never replay another's response.
- The key is claimed by one statement that commits on its own (`INSERT … ON CONFLICT DO
  NOTHING`), so that a concurrent retry sees it at once (409 while in flight); the response is
  stored in the request's own transaction, so it commits together with the change it
  describes, or not at all.
- A request that fails releases its claim, so that it can be retried.
- Keys live 24 hours. The same key with another body answers 422.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.core.db import Database, get_database
from app.core.driver import Statement, param
from app.core.errors import Conflict, Problem
from app.core.security import Principal, authenticate
from app.models import IdempotencyKey
from app.models.base import utcnow
from app.models.tables import IDEMPOTENCY_KEYS

KEY_LIFETIME = timedelta(hours=24)
# A claim older than this was left by a process that died mid-request; it may be taken over.
ABANDONED_AFTER = timedelta(minutes=2)
REPLAYED_HEADERS = ("content-type", "etag", "location")


class IdempotencyKeyReused(Problem):
    status, slug, title = (
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused with another request",
    )


class Replay(Exception):
    """The first response to this key; answered as it was."""

    def __init__(self, record: IdempotencyKey) -> None:
        # Copied out: the row is gone with its session by the time the response is built.
        self.status = record.response_status or 200
        self.body = record.response_body or b""
        self.headers = dict(record.response_headers or {})


@dataclass(frozen=True)
class Claim:
    caller: str
    key: str


def replay_response(replay: Replay) -> Response:
    headers = {**replay.headers, "Idempotent-Replayed": "true"}
    return Response(content=replay.body, status_code=replay.status, headers=headers)


async def claim_idempotency_key(
    request: Request,
    database: Annotated[Database, Depends(get_database)],
    principal: Annotated[Principal, Depends(authenticate)],
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Any unique string (a UUID): a retry with the same key and body gets "
            "the first response instead of a second effect. Kept 24 hours.",
        ),
    ] = None,
) -> None:
    if key is None:
        return
    caller = f"{principal.tenant_id}:{principal.kind}:{principal.subject_id}"
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + await request.body()
    ).hexdigest()
    now = utcnow()
    claim = {
        "claimant": caller,
        "claimed_key": key,
        "digest": digest,
        "now": now,
        "expires_at": now + KEY_LIFETIME,
    }
    if not await _claim_new(database, claim):
        await _claim_used(database, claim)
    request.state.idempotency_claim = Claim(caller, key)


def _claim_statement(dialect_insert: Any) -> Any:
    return (
        dialect_insert(IDEMPOTENCY_KEYS)
        .values(
            caller=param("claimant"),
            key=param("claimed_key"),
            request_hash=param("digest"),
            state="in_flight",
            created_at=param("now"),
            expires_at=param("expires_at"),
        )
        .on_conflict_do_nothing()
        .returning(IDEMPOTENCY_KEYS.c.key)
    )


_CLAIM = Statement(_claim_statement(sqlite_insert), postgresql=_claim_statement(pg_insert))
_STORE = Statement(
    IDEMPOTENCY_KEYS.update()
    .where(
        IDEMPOTENCY_KEYS.c.caller == param("claimant"),
        IDEMPOTENCY_KEYS.c.key == param("claimed_key"),
    )
    .values(
        state="done",
        response_status=param("status"),
        response_body=param("body"),
        response_headers=param("headers"),
    )
)


async def _claim_new(database: Database, claim: dict[str, Any]) -> bool:
    """The common case, a key never seen: claimed and committed in one statement."""
    async with database.autocommit_engine.begin() as connection:
        return bool(await _CLAIM.scalars(connection, **claim))


async def _claim_used(database: Database, claim: dict[str, Any]) -> None:
    """A key seen before: a retry (replayed or 409 while in flight), a reuse with another body
    (422), or a claim expired or abandoned by a dead process (taken over)."""
    now = claim["now"]
    async with AsyncSession(database.engine) as session, session.begin():
        existing = await session.get(
            IdempotencyKey, (claim["claimant"], claim["claimed_key"]), with_for_update=True
        )
        if existing is not None:
            taken_over = existing.expires_at <= now or (
                existing.state == "in_flight" and existing.created_at <= now - ABANDONED_AFTER
            )
            if not taken_over:
                if existing.request_hash != claim["digest"]:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was used for a different request."
                    )
                if existing.state == "in_flight":
                    raise Conflict("A request with this Idempotency-Key is still in flight.")
                raise Replay(existing)
            await session.delete(existing)
            await session.flush()
        if not await _CLAIM.scalars(session, **claim):
            # A concurrent twin claimed it between our read and our write.
            raise Conflict("A request with this Idempotency-Key is still in flight.")


async def store_response(session: AsyncSession, claim: Claim, response: Response) -> None:
    headers = {k: v for k, v in response.headers.items() if k in REPLAYED_HEADERS}
    await _STORE.execute_many(
        session,
        [
            {
                "claimant": claim.caller,
                "claimed_key": claim.key,
                "status": response.status_code,
                "body": bytes(response.body),
                "headers": headers,
            }
        ],
    )


async def release(database: Database, claim: Claim) -> None:
    async with database.autocommit_engine.begin() as connection:
        await connection.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.caller == claim.caller,
                IdempotencyKey.key == claim.key,
                IdempotencyKey.state == "in_flight",
            )
        )


async def prune_expired(session: AsyncSession, limit: int = 1000) -> int:
    expired = (
        select(IdempotencyKey.caller, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= utcnow())
        .limit(limit)
    )
    rows = (await session.execute(expired)).all()
    for caller, key in rows:
        await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
        )
    return len(rows)
