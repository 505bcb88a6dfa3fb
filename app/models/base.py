"""Declarative base, constraint naming convention and the column types every table shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on PostgreSQL and SQLite alike
    (SQLite stores no offset and would hand back naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_stamp_clock: ContextVar[Callable[[], datetime] | None] = ContextVar("stamp_clock", default=None)


def utcnow() -> datetime:
    """Now, for the timestamps rows are stamped with (`created_at`, an event's `occurred_at`)."""
    clock = _stamp_clock.get()
    return datetime.now(UTC) if clock is None else clock()


@contextmanager
def stamped_by(clock: Callable[[], datetime]) -> Iterator[None]:
    """Within it (this task and the tasks it starts), rows are stamped by `clock` instead of
    the real one: the demo's four weeks of history, made in a second, are dated when they
    happen in the story, as the services' own `now` is."""
    token = _stamp_clock.set(clock)
    try:
        yield
    finally:
        _stamp_clock.reset(token)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def id_column(**kwargs: Any) -> Mapped[str]:
    return mapped_column(String(40), primary_key=True, **kwargs)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow)
