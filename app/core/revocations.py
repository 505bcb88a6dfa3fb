"""Tokens refused before they expire: revoked one by one (RFC 7009), with the OAuth client that
obtained them, or with the person they are bound to (an erased client, a deleted clinician).

The state is a table (app.models.revocations), so that a revocation made through one API
process holds in all of them. Each process keeps the rows still in force in memory and reloads
them at most every `REFRESH_SECONDS`: one small query per process, never one per request, and a
request's check is three set lookups. A request that finds the copy older than that waits for
the reload, so no process accepts a revoked token more than `REFRESH_SECONDS` after the
revocation was committed; the process that committed it reloads on its next request.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import datetime, timedelta
from typing import cast

from annotated_types import Le
from sqlalchemy import delete, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import Database
from app.models.base import utcnow
from app.models.revocations import RevokedKind, TokenRevocation

REFRESH_SECONDS = 2.0
_WRITTEN = "homework.revocations_written"


def _largest(field: str) -> int:
    return max(cast(int, m.le) for m in Settings.model_fields[field].metadata if isinstance(m, Le))


# The longest any of our tokens can live, whatever the settings: a revocation of a person or a
# client is kept that long, then no token it could refuse is still valid.
LONGEST_TOKEN_LIFE = timedelta(
    seconds=max(_largest("system_token_ttl_seconds"), _largest("user_token_ttl_seconds"))
    + _largest("token_leeway_seconds")
)


def subject_key(kind: str, subject_id: str) -> str:
    return f"{kind}:{subject_id}"


async def revoke(
    session: AsyncSession,
    tenant_id: str,
    kind: RevokedKind,
    value: str,
    forget_after: datetime | None = None,
) -> None:
    """Record a revocation in the caller's transaction: it holds once that commits."""
    now = utcnow()
    # Rows past their use are deleted here rather than by a job of their own: revocations are
    # rare, and each one sweeps what is already dead.
    await session.execute(delete(TokenRevocation).where(TokenRevocation.forget_after < now))
    session.add(
        TokenRevocation(
            tenant_id=tenant_id,
            kind=kind.value,
            value=value,
            revoked_at=now,
            forget_after=forget_after or now + LONGEST_TOKEN_LIFE,
        )
    )
    await session.flush()
    session.info[_WRITTEN] = True


async def revoked_kinds(
    session: AsyncSession, tenant_id: str, keys: dict[RevokedKind, str]
) -> set[str]:
    """Which of `keys` stand revoked in the tenant, read from the database itself (for
    introspection, which must not answer from a copy a few seconds old)."""
    rows = await session.execute(
        select(TokenRevocation.kind, TokenRevocation.value).where(
            TokenRevocation.tenant_id == tenant_id,
            TokenRevocation.value.in_(list(keys.values())),
            TokenRevocation.forget_after > utcnow(),
        )
    )
    return {kind for kind, value in rows if keys.get(RevokedKind(kind)) == value}


class RevocationList:
    """One process's copy of the revocations in force."""

    def __init__(self, database: Database, refresh_seconds: float = REFRESH_SECONDS) -> None:
        # Read in autocommit: a SELECT alone, without a BEGIN and a COMMIT around it.
        self.engine = database.autocommit_engine
        self.refresh_seconds = refresh_seconds
        self._tokens: frozenset[str] = frozenset()
        self._clients: frozenset[str] = frozenset()
        self._subjects: frozenset[str] = frozenset()
        self._fresh_until = float("-inf")
        self._generation = 0
        self._loading: asyncio.Future[None] | None = None
        # Sessions are bound to the plain engine; the after-commit hook finds this list by it.
        _lists_of(database.engine.sync_engine).add(self)

    async def ensure_fresh(self) -> None:
        if time.monotonic() < self._fresh_until:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        # Every request that finds the copy stale waits for the same one query; shielded, so
        # that a request cancelled meanwhile does not cancel the others' reload.
        await asyncio.shield(self._loading)

    def refusal(self, token_id: str, client_id: str, subject: str) -> str | None:
        """Why the token is refused, or None: the error_description of its 401."""
        if token_id in self._tokens:
            return "the token has been revoked"
        if client_id in self._clients:
            return "the OAuth client that obtained the token has been revoked"
        if subject in self._subjects:
            if subject.startswith("client:"):
                return "the client the token is bound to has been erased"
            return "the clinician the token is bound to has been deleted"
        return None

    def invalidate(self) -> None:
        """Reload on the next request (a revocation was just committed here)."""
        self._generation += 1
        self._fresh_until = float("-inf")

    async def _load(self) -> None:
        generation, started = self._generation, time.monotonic()
        try:
            async with self.engine.connect() as connection:
                rows = (
                    await connection.execute(
                        select(TokenRevocation.kind, TokenRevocation.value).where(
                            TokenRevocation.forget_after > utcnow()
                        )
                    )
                ).all()
        finally:
            self._loading = None
        by_kind: dict[str, set[str]] = {kind.value: set() for kind in RevokedKind}
        for kind, value in rows:
            by_kind.setdefault(kind, set()).add(value)
        self._tokens = frozenset(by_kind[RevokedKind.token])
        self._clients = frozenset(by_kind[RevokedKind.oauth_client])
        self._subjects = frozenset(by_kind[RevokedKind.subject])
        # An invalidation that came while the query ran may not be in what it read.
        if generation == self._generation:
            self._fresh_until = started + self.refresh_seconds


_LISTS: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[RevocationList]] = (
    weakref.WeakKeyDictionary()
)


def _lists_of(engine: Engine) -> weakref.WeakSet[RevocationList]:
    return _LISTS.setdefault(engine, weakref.WeakSet())


@event.listens_for(Session, "after_commit")
def _reload_after_a_revocation(session: Session) -> None:
    # The process that commits a revocation refuses the token from its very next request.
    if session.info.pop(_WRITTEN, False) and isinstance(session.bind, Engine):
        for revocations in list(_lists_of(session.bind)):
            revocations.invalidate()
