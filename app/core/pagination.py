"""Opaque cursor pagination, newest first.

Our ids sort by creation time, so "newest first" is `ORDER BY id DESC` on an index that every
table has; the cursor is the last id seen, wrapped so that callers do not depend on its form.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select

from app.core.errors import ValidationFailed

T = TypeVar("T")
MAX_LIMIT = 200

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="The `next_cursor` of the previous page.",
    ),
]


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("v1:") or len(raw) > 64:
        raise ValidationFailed.for_field("query", ["cursor"], "The cursor is not valid.", "cursor")
    return raw[3:]


AnySelect = Select[*tuple[Any, ...]]


def paginate(statement: AnySelect, id_column: Any, limit: int, cursor: str | None) -> AnySelect:
    """Newest first, one row more than the page so that we know whether another follows."""
    if cursor:
        statement = statement.where(id_column < decode_cursor(cursor))
    return statement.order_by(id_column.desc()).limit(limit + 1)


def page_of(rows: Sequence[T], limit: int, last_id: Any) -> tuple[list[T], str | None]:
    """Split the `limit + 1` rows of `paginate` into the page and the next cursor."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(last_id(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor
