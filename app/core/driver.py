"""Hot statements on the database driver: SQLAlchemy Core, compiled once, run on asyncpg.

SQLAlchemy's execution path (cache key, execution context, result and ORM processing) costs
about 0.3 ms of CPU per statement; the same statement sent on the asyncpg connection costs
about 0.1 ms (measured in docs/BENCHMARKS.md). The requests a client app sends most (its
today, one assignment, a list, a completion) send a few statements each, so on PostgreSQL those
statements go straight to the driver, on the request session's own connection and transaction.

A statement is still written once, in Core, with named bind parameters; on SQLite (and any
other database) it runs through the session like every other statement, so the suite runs both
executors. Rows come back as plain named tuples, one per table selected from, whose fields
are the tables' column names: what the response builders read from ORM objects.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Insert, Table, Update, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.core.pagination import AnySelect

Executor = AsyncSession | AsyncConnection
"""A request's session, or a connection of its own (the Idempotency-Key claim commits alone)."""

_POSTGRESQL = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_RECORD_TYPES: dict[str, Any] = {}


def _record_type(table: Table) -> Any:
    """A named tuple per table, with its column names as fields."""
    if table.name not in _RECORD_TYPES:
        _RECORD_TYPES[table.name] = namedtuple(
            f"{table.name}_row", [column.name for column in table.columns]
        )
    return _RECORD_TYPES[table.name]


class Statement:
    """A statement built once at import, with `bindparam`s for what changes per request.

    Select whole tables (`select(*Occurrence.__table__.c, *Assignment.__table__.c)`) and name
    them in `tables`: each row comes back as a tuple of records, one per table, in the order
    selected. Without `tables`, a row is the plain tuple of its columns. `in_()` takes only
    constants here: a list that varies per call would change the statement's text. Where
    PostgreSQL needs its own syntax (`INSERT … ON CONFLICT`), pass it as `postgresql`. In an
    INSERT or UPDATE a parameter may not be named after a column (SQLAlchemy keeps those).
    """

    def __init__(
        self,
        statement: AnySelect | Insert | Update,
        tables: Sequence[Table] = (),
        *,
        postgresql: AnySelect | Insert | Update | None = None,
    ):
        self.statement = statement
        self.tables = list(tables)
        # Each table's slice of a row, by position.
        self._slices: list[tuple[Any, int, int]] = []
        start = 0
        for table in self.tables:
            width = len(table.columns)
            self._slices.append((_record_type(table), start, start + width))
            start += width
        compiled = (postgresql if postgresql is not None else statement).compile(
            dialect=_POSTGRESQL, compile_kwargs={"render_postcompile": True}
        )
        self.sql = str(compiled)
        # The values written into the statement (`status IN ('open', ...)`); the rest come with
        # each call, and a missing one is a KeyError.
        self._constants = {k: v for k, v in compiled.params.items() if v is not None}
        self._order = list(compiled.positiontup or ())
        # What SQLAlchemy would do to each value on its way to asyncpg (JSON to text, say).
        self._processors = [_bind_processor(compiled.binds.get(name)) for name in self._order]

    def positional(self, params: Mapping[str, Any]) -> list[Any]:
        """The values in the order of the `$n` placeholders, bind-processed."""
        values = {**self._constants, **params}
        return [
            value if process is None else process(value)
            for process, value in zip(
                self._processors, (values[name] for name in self._order), strict=True
            )
        ]

    def _records(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self._slices:  # plain columns
            return tuple(row)
        return tuple(kind._make(row[start:end]) for kind, start, end in self._slices)

    async def fetch(self, executor: Executor, **params: Any) -> list[tuple[Any, ...]]:
        """Every row, as a tuple of records (one per table)."""
        rows = await self._rows(executor, params)
        return [self._records(row) for row in rows]

    async def fetch_one(self, executor: Executor, **params: Any) -> tuple[Any, ...] | None:
        rows = await self.fetch(executor, **params)
        return rows[0] if rows else None

    async def scalars(self, executor: Executor, **params: Any) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in await self._rows(executor, params)]

    async def execute_many(self, executor: Executor, rows: Sequence[Mapping[str, Any]]) -> None:
        """A write, once per row of parameters, in one round trip."""
        connection = await _postgresql_connection(executor)
        if connection is None:
            await executor.execute(self.statement, list(rows) if len(rows) > 1 else rows[0])
        elif len(rows) == 1:  # asyncpg's executemany costs more than execute for one row
            await self._send(connection, "execute", self.positional(rows[0]))
        else:
            await self._send(connection, "executemany", [self.positional(row) for row in rows])

    async def _rows(self, executor: Executor, params: Mapping[str, Any]) -> Sequence[Any]:
        connection = await _postgresql_connection(executor)
        if connection is None:
            return (await executor.execute(self.statement, params)).all()
        rows: Sequence[Any] = await self._send(connection, "fetch", self.positional(params))
        return rows

    async def _send(self, connection: AsyncConnection, method: str, parameters: list[Any]) -> Any:
        """Send the statement on the asyncpg connection under `connection`, as SQLAlchemy would
        have: announced to its `before_cursor_execute` and `after_cursor_execute` listeners
        (query counters, tracing),
        inside the session's transaction, and failing with SQLAlchemy's exceptions."""
        many = method == "executemany"
        sync = connection.sync_connection
        assert sync is not None
        # An execution context of our own, as listeners keep per-statement state on it
        # (OpenTelemetry's SQLAlchemy tracer, its span): announced before and after.
        context = _DriverContext()
        sync.dispatch.before_cursor_execute(sync, None, self.sql, parameters, context, many)
        try:
            return await self._send_raw(connection, method, parameters)
        finally:
            sync.dispatch.after_cursor_execute(sync, None, self.sql, parameters, context, many)

    async def _send_raw(
        self, connection: AsyncConnection, method: str, parameters: list[Any]
    ) -> Any:
        many = method == "executemany"
        raw = await connection.get_raw_connection()
        # Private parts of SQLAlchemy's asyncpg adapter, hence the pin to SQLAlchemy's minor
        # version in pyproject.toml: `autocommit`, `_transaction` (None until BEGIN is sent),
        # `_start_transaction()` (sends it) and, in `_translated`, `_handle_exception(error)`.
        # tests/test_driver_internals.py checks each, and that a FOR UPDATE here really locks.
        adapter: Any = raw.dbapi_connection
        if not adapter.autocommit and adapter._transaction is None:
            # SQLAlchemy's asyncpg adapter sends BEGIN lazily, just before its own first
            # statement: one sent past it would run outside the session's transaction (and a
            # FOR UPDATE would lock nothing).
            await adapter._start_transaction()
        send = getattr(raw.driver_connection, method)
        try:
            return await (send(self.sql, parameters) if many else send(self.sql, *parameters))
        except Exception as error:
            raise await _translated(connection, adapter, self.sql, error) from error


class _DriverContext:
    """What stands for SQLAlchemy's execution context on the driver's path: an attribute bag."""


async def _translated(
    connection: AsyncConnection, adapter: Any, statement: str, error: Exception
) -> Exception:
    """asyncpg's error as SQLAlchemy raises it, so the error handlers answer alike on both paths:
    a unique violation is an IntegrityError, a NUL byte a DataError (422), a lost connection a
    disconnect (503) whose connection is invalidated. Parameters are hidden: they are PHI."""
    dialect = connection.dialect
    dbapi = dialect.loaded_dbapi
    try:
        adapter._handle_exception(error)  # raises the DBAPI-shaped error SQLAlchemy would see
    except dbapi.Error as dbapi_error:
        gone = dialect.is_disconnect(dbapi_error, adapter, None)
        if gone:
            await connection.invalidate()
        return DBAPIError.instance(
            statement,
            None,
            dbapi_error,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=gone,
            dialect=dialect,
        )
    except Exception as other:
        return other
    return error


async def _postgresql_connection(
    executor: Executor,
) -> AsyncConnection | None:
    """The session's connection (in its transaction, if any), on PostgreSQL only."""
    if isinstance(executor, AsyncConnection):
        return executor if executor.dialect.name == "postgresql" else None
    if executor.get_bind().dialect.name != "postgresql":
        return None
    return await executor.connection()


def _bind_processor(bind: BindParameter[Any] | None) -> Callable[[Any], Any] | None:
    if bind is None:  # one of a constant list's values, expanded: plain text
        return None
    processor: Callable[[Any], Any] | None = bind.type.dialect_impl(_POSTGRESQL).bind_processor(
        _POSTGRESQL
    )
    return processor


def param(name: str) -> BindParameter[Any]:
    """A value a `Statement` takes with each call (required when it runs, not when built)."""
    return bindparam(name, required=False)


def values_of(instance: Any, table: Table) -> dict[str, Any]:
    """An ORM object's column values, by column name: a row for an INSERT `Statement`."""
    return {column.name: getattr(instance, column.name) for column in table.columns}


def columns_of(*tables: Table) -> list[ColumnElement[Any]]:
    return [column for table in tables for column in table.columns]
