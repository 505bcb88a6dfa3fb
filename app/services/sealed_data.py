"""Every sealed column, and `homework keys rotate-data`: each value re-sealed under the first
data key, and any value stored before sealing (plaintext) sealed at last.

Run it after a new key is first in HOMEWORK_DATA_KEYS on every process, and before an old key
is removed. It is idempotent (what is already under the first key is left alone) and works in
short batches, each its own transaction, so it runs beside live traffic: a value is replaced
only if it is still the one that was read, so a secret rotated meanwhile is never overwritten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_, select

from app.core.data_keys import DataKeys, Place, Unsealable, is_sealed
from app.core.db import Database
from app.models import IdempotencyKey, WebhookEndpoint
from app.services.webhooks.signing import SECRET_PREFIX, secret_bytes


def _legacy_webhook_secret(stored: str | bytes) -> bytes:
    if not isinstance(stored, str) or not stored.startswith(SECRET_PREFIX):
        raise Unsealable("neither sealed nor a whsec_ secret")
    return secret_bytes(stored)


def _legacy_body(stored: str | bytes) -> bytes:
    return stored if isinstance(stored, bytes) else stored.encode()


@dataclass(frozen=True)
class SealedColumn:
    table: Table
    row_key: tuple[str, ...]
    column: str
    # What a value stored before sealing holds, as the bytes that are sealed.
    legacy_plaintext: Callable[[str | bytes], bytes]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


ENDPOINTS: Table = WebhookEndpoint.__table__  # type: ignore[assignment]
IDEMPOTENCY_KEYS: Table = IdempotencyKey.__table__  # type: ignore[assignment]
SEALED_COLUMNS = (
    SealedColumn(ENDPOINTS, ("id",), "secret", _legacy_webhook_secret),
    SealedColumn(ENDPOINTS, ("id",), "previous_secret", _legacy_webhook_secret),
    SealedColumn(IDEMPOTENCY_KEYS, ("caller", "key"), "response_body", _legacy_body),
)


async def rotate(database: Database, keys: DataKeys, batch_size: int) -> dict[str, Counter[str]]:
    """Counts per column: `re_sealed` (from an older key), `sealed_plaintext`, `current`
    (already under the first key), `changed_meanwhile` (rewritten by a request as we went:
    under whichever key that process seals with), `unsealable` (no key of ours opens it)."""
    return {c.name: await _rotate_column(database, keys, c, batch_size) for c in SEALED_COLUMNS}


async def _rotate_column(
    database: Database, keys: DataKeys, sealed: SealedColumn, batch_size: int
) -> Counter[str]:
    counts: Counter[str] = Counter()
    table, value = sealed.table, sealed.table.c[sealed.column]
    row_key = [table.c[name] for name in sealed.row_key]
    after: tuple[str, ...] | None = None
    while True:
        statement = select(*row_key, value).where(value.is_not(None))
        if after is not None:
            statement = statement.where(_after(row_key, after))
        async with database.sessionmaker() as session, session.begin():
            rows = (await session.execute(statement.order_by(*row_key).limit(batch_size))).all()
            for *ids, stored in rows:
                place = Place(table.name, sealed.column, tuple(ids))
                as_bytes = isinstance(stored, bytes)
                # Only its prefix matters if it is not ours (a plaintext body): never a failure.
                text = stored.decode("ascii", errors="replace") if as_bytes else stored
                if keys.is_current(text):
                    counts["current"] += 1
                    continue
                try:
                    if is_sealed(text):
                        plaintext, outcome = keys.unseal(text, place), "re_sealed"
                    else:
                        plaintext, outcome = sealed.legacy_plaintext(stored), "sealed_plaintext"
                except Unsealable:
                    counts["unsealable"] += 1
                    continue
                resealed = keys.seal(plaintext, place)
                replaced = await session.execute(
                    table.update()
                    .where(*(c == v for c, v in zip(row_key, ids, strict=True)), value == stored)
                    .values({sealed.column: resealed.encode() if as_bytes else resealed})
                )
                rowcount: int = replaced.rowcount  # type: ignore[attr-defined]
                counts[outcome if rowcount else "changed_meanwhile"] += 1
        if len(rows) < batch_size:
            return counts
        after = tuple(rows[-1][: len(row_key)])


def _after(columns: Sequence[ColumnElement[Any]], values: tuple[str, ...]) -> ColumnElement[bool]:
    """Keyset pagination over a (composite) primary key: rows strictly after `values`."""
    first, rest = columns[0], columns[1:]
    if not rest:
        return first > values[0]
    return or_(first > values[0], and_(first == values[0], _after(rest, values[1:])))
