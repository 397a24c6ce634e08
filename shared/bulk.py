"""Insert-only rows written in bulk: one batched INSERT (or COPY) per table instead of one ORM object per row.

A consumer batch writes thousands of new rows that nothing in the same transaction updates (outbox
and inbox rows; the router's case facts, decisions, referrals, timers and feed entries). As ORM
objects each costs its construction, attribute instrumentation and unit-of-work bookkeeping, which
made up most of a batch's time; a bulk row is just its values. The unit of work (`shared.uow`) holds a
transaction's rows and says when they are written; this module fills in their defaults and writes them.

A new row that later events of the same batch may still change (the metrics service's facts) is a
`Draft`: its values stay open to change until the commit, which inserts it with the other rows.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from pydantic_core import PydanticUndefined
from sqlalchemy import Connection, Dialect, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

_Defaults = tuple[dict[str, Any], dict[str, Any]]
_defaults_by_model: dict[type[SQLModel], _Defaults] = {}


def _defaults(model: type[SQLModel]) -> _Defaults:
    """(plain defaults, default factories) of a table model, read once; autoincrement ids are left out."""
    if model not in _defaults_by_model:
        table: Table = model.__table__  # type: ignore[attr-defined]
        generated = frozenset(
            c.name for c in table.primary_key.columns if c.autoincrement is True or c.autoincrement == "auto"
        )
        plain: dict[str, Any] = {}
        factories: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            if name in generated and field.default is None:
                continue  # an autoincrement id: the database numbers it
            if field.default_factory is not None:
                factories[name] = field.default_factory
            elif field.default is not PydanticUndefined:
                plain[name] = field.default
        _defaults_by_model[model] = (plain, factories)
    return _defaults_by_model[model]


def filled(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    """The row's values with the model's defaults filled in for the fields left out."""
    plain, factories = _defaults(model)
    return {**plain, **{name: make() for name, make in factories.items() if name not in values}, **values}


class Draft:
    """A new row whose fields are read and set as attributes, like the model's, until it is inserted."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.values:
            raise AttributeError(f"{name!r} is not a field of this row")
        self.values[name] = value


COPY_FROM_ROWS = 64
"""From this many rows in one write, PostgreSQL gets them by COPY rather than by INSERT statements."""

_Bind = Callable[[Any], Any] | None
_copy_plans: dict[tuple[str, Table, tuple[str, ...]], tuple[str, tuple[_Bind, ...]]] = {}


def write_rows(session: Session, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    """Write `rows` in the session's transaction, table by table in the order they were added."""
    by_table: dict[Table, dict[frozenset[str], list[dict[str, Any]]]] = {}
    for table, row in rows:
        by_table.setdefault(table, {}).setdefault(frozenset(row), []).append(row)
    connection = session.connection()
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection) and len(rows) >= COPY_FROM_ROWS:
        # A consumer batch's thousands of rows: COPY costs the client about half as much per row as
        # the pipelined INSERTs below, and each table costs one COPY, two round trips, whatever its
        # number of rows.
        with _translated(connection, by_table), driver.cursor() as cursor:
            for table, shapes in by_table.items():
                for same_columns in shapes.values():
                    _copy(cursor, connection.dialect, table, same_columns)
        return
    with _pipelined(connection, by_table):
        for table, shapes in by_table.items():
            # No RETURNING: psycopg then sends the rows as one prepared statement in pipeline mode;
            # with it, SQLAlchemy inlines every row into one long INSERT that psycopg re-parses in
            # Python each time, at more than twice the cost. `inline()` keeps a single row's INSERT
            # from asking for its key back too.
            statement = insert(table).inline()
            for same_columns in shapes.values():
                connection.execute(statement, same_columns)


def _copy(cursor: psycopg.Cursor[Any], dialect: Dialect, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY `rows` (all with the same columns) into `table`, each value bound as an INSERT would bind it."""
    names = tuple(rows[0])
    sql, binds = _copy_plan(dialect, table, names)
    with cursor.copy(sql) as copy:
        for row in rows:
            values = [row[name] for name in names]
            copy.write_row([v if bind is None or v is None else bind(v) for v, bind in zip(values, binds, strict=True)])


def _copy_plan(dialect: Dialect, table: Table, names: tuple[str, ...]) -> tuple[str, tuple[_Bind, ...]]:
    """The COPY statement for these columns of `table`, and each column's bind processor (JSON, UTC times…)."""
    key = (dialect.name, table, names)
    if key not in _copy_plans:
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.quote(name) for name in names)
        sql = f"COPY {quote.format_table(table)} ({columns}) FROM STDIN"
        binds = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        _copy_plans[key] = (sql, binds)
    return _copy_plans[key]


@contextmanager
def _pipelined(connection: Connection, tables: Iterable[Table]) -> Iterator[None]:
    """On psycopg, the INSERTs of the block go out together and their results come back at its end.

    One round trip for all the tables instead of one each (an intake submission writes four: case,
    contact, members, outbox). A failure is then raised at the end, by psycopg, outside SQLAlchemy's
    handling of a statement; it is translated as `_translated` says.
    """
    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        yield
        return
    with _translated(connection, tables), driver.pipeline():
        yield


@contextmanager
def _translated(connection: Connection, tables: Iterable[Table]) -> Iterator[None]:
    """psycopg's errors raised outside SQLAlchemy (a pipeline's end, a COPY) translated as SQLAlchemy does.

    IntegrityError, OperationalError… as for a statement SQLAlchemy sent itself, and a lost
    connection is invalidated.
    """
    try:
        yield
    except psycopg.Error as exc:
        dialect = connection.dialect
        lost = dialect.is_disconnect(cast(Any, exc), connection.connection, None)
        if lost:
            connection.invalidate(exc)
        statement = "INSERT INTO " + ", ".join(table.fullname for table in tables)
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, connection_invalidated=lost, dialect=dialect
        ) from exc
