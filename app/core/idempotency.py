"""`Idempotency-Key` on every POST: a retried request gets the first response, not a second
effect.

- The key is kept per caller (tenant and subject), after the token is verified, so a caller can
  never replay another's response.
- The key is claimed by one statement that commits on its own (`INSERT … ON CONFLICT DO
  NOTHING`), so that a concurrent retry sees it at once (409 while in flight); the response is
  stored in the request's own transaction, so it commits together with the change it
  describes, or not at all.
- A request that fails releases its claim, so that it can be retried.
- An in-flight claim is a lease of `LEASE` seconds that a heartbeat renews every
  `RENEW_EVERY` while the claiming request runs. A twin retry meanwhile gets 409 with
  `Retry-After` (the seconds left on the lease). A process that dies (kill -9, a lost host)
  stops renewing, so its key is taken over by the first retry at most `LEASE` seconds after the
  last renewal: within 5 s of the crash, plus any clock skew between API hosts (the lease is
  written with the claimant's clock and read with the retrier's).
- Keys live 24 hours. The same key with another body answers 422.
- Every stored answer is sealed (AES-GCM under the data keys, bound to its caller and key:
  app/core/data_keys.py), not only those of the routes that show a secret once (a webhook
  endpoint's): sealing costs about 20 µs (a 600-byte answer) against a write's milliseconds,
  no route can forget to ask for it, and the other answers hold client data too. An answer
  stored before sealing (plain JSON) is replayed as it is; it is gone within 24 hours anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import delete, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.core.data_keys import DataKeys, Place, is_sealed
from app.core.db import Database, get_database
from app.core.db_errors import database_unavailable
from app.core.driver import Statement, param
from app.core.errors import Conflict, Problem
from app.core.security import Principal, authenticate
from app.models import IdempotencyKey
from app.models.base import utcnow
from app.models.tables import IDEMPOTENCY_KEYS

KEY_LIFETIME = timedelta(hours=24)
# Long enough that a renewal delayed by a busy event loop or a slow statement does not lose a
# live claim; short enough that a dead claimant's key is free again within seconds.
LEASE = timedelta(seconds=5)
RENEW_EVERY = 1.0
REPLAYED_HEADERS = ("content-type", "etag", "location")

log = logging.getLogger("homework.idempotency")


class IdempotencyKeyReused(Problem):
    status, slug, title = (
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused with another request",
    )


class Replay(Exception):
    """The first response to this key; answered as it was."""

    def __init__(self, record: IdempotencyKey, keys: DataKeys) -> None:
        # Copied out: the row is gone with its session by the time the response is built.
        self.status = record.response_status or 200
        self.body = _unsealed(keys, record.caller, record.key, record.response_body or b"")
        self.headers = dict(record.response_headers or {})


class InFlight(Conflict):
    def __init__(self, lease_expires_at: datetime | None, now: datetime) -> None:
        left = (lease_expires_at - now).total_seconds() if lease_expires_at else 0
        super().__init__(
            "A request with this Idempotency-Key is still in flight.",
            headers={"Retry-After": str(max(1, math.ceil(left)))},
        )


@dataclass
class Claim:
    caller: str
    key: str
    keys: DataKeys = field(compare=False, repr=False)  # seal the answer stored for it
    # Renews the lease while the request runs; stopped once the answer is stored or released.
    heartbeat: asyncio.Task[None] | None = field(default=None, compare=False, repr=False)

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            self.heartbeat = None


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
        "lease_expires_at": now + LEASE,
    }
    if not await _claim_new(database, claim):
        await _claim_used(database, claim)
    held = Claim(caller, key, DataKeys.from_settings(database.settings))
    owner = asyncio.current_task()
    assert owner is not None
    held.heartbeat = asyncio.create_task(_keep_leased(database, held, owner))
    request.state.idempotency_claim = held


async def _keep_leased(database: Database, claim: Claim, owner: asyncio.Task[Any]) -> None:
    """Renew the claim's lease until its request ends, however it ends: the request's task is
    watched, so a request cancelled before it could release still stops renewing."""
    while True:
        await asyncio.wait({owner}, timeout=RENEW_EVERY)
        if owner.done():
            return
        try:
            async with database.autocommit_engine.begin() as connection:
                await connection.execute(
                    update(IdempotencyKey)
                    .where(
                        IdempotencyKey.caller == claim.caller,
                        IdempotencyKey.key == claim.key,
                        IdempotencyKey.state == "in_flight",
                    )
                    .values(lease_expires_at=utcnow() + LEASE)
                )
        except Exception as error:
            # Missed renewals shorten the lease; the request itself will fail or finish.
            log.warning("idempotency lease not renewed", extra={"error": type(error).__name__})


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
            lease_expires_at=param("lease_expires_at"),
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
        lease_expires_at=null(),
    )
)


async def _claim_new(database: Database, claim: dict[str, Any]) -> bool:
    """The common case, a key never seen: claimed and committed in one statement."""
    async with database.autocommit_engine.begin() as connection:
        return bool(await _CLAIM.scalars(connection, **claim))


async def _claim_used(database: Database, claim: dict[str, Any]) -> None:
    """A key seen before: a retry (replayed or 409 while in flight), a reuse with another body
    (422), or a claim expired or whose lease ran out with its process (taken over)."""
    now = claim["now"]
    async with AsyncSession(database.engine) as session, session.begin():
        existing = await session.get(
            IdempotencyKey, (claim["claimant"], claim["claimed_key"]), with_for_update=True
        )
        if existing is not None:
            lease = existing.lease_expires_at
            taken_over = existing.expires_at <= now or (
                existing.state == "in_flight" and (lease is None or lease <= now)
            )
            if not taken_over:
                if existing.request_hash != claim["digest"]:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was used for a different request."
                    )
                if existing.state == "in_flight":
                    raise InFlight(lease, now)
                raise Replay(existing, DataKeys.from_settings(database.settings))
            await session.delete(existing)
            await session.flush()
        if not await _CLAIM.scalars(session, **claim):
            # A concurrent twin claimed it between our read and our write.
            raise InFlight(claim["lease_expires_at"], now)


async def store_response(session: AsyncSession, claim: Claim, response: Response) -> None:
    # No renewal past this point: the UPDATE below holds the row (a PostgreSQL row lock, the
    # SQLite write lock) until the request's transaction ends, so no twin can take it over.
    claim.stop()
    headers = {k: v for k, v in response.headers.items() if k in REPLAYED_HEADERS}
    await _STORE.execute_many(
        session,
        [
            {
                "claimant": claim.caller,
                "claimed_key": claim.key,
                "status": response.status_code,
                "body": _sealed(claim, bytes(response.body)),
                "headers": headers,
            }
        ],
    )


def _place(caller: str, key: str) -> Place:
    return Place("idempotency_keys", "response_body", (caller, key))


def _sealed(claim: Claim, body: bytes) -> bytes:
    return claim.keys.seal(body, _place(claim.caller, claim.key)).encode()


def _unsealed(keys: DataKeys, caller: str, key: str, stored: bytes) -> bytes:
    if not is_sealed(stored):
        return stored  # stored before sealing: plain JSON
    return keys.unseal(stored.decode(), _place(caller, key))


async def release(database: Database, claim: Claim) -> None:
    claim.stop()
    try:
        async with database.autocommit_engine.begin() as connection:
            await connection.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.caller == claim.caller,
                    IdempotencyKey.key == claim.key,
                    IdempotencyKey.state == "in_flight",
                )
            )
    except Exception as error:
        if not database_unavailable(error):
            raise
        # The request's own failure is the answer (503 if it was this outage too); the key
        # frees itself when its lease, no longer renewed, runs out.
        log.warning("idempotency key left to its lease", extra={"error": type(error).__name__})


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
