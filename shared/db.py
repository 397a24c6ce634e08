"""Database access: one schema per service on PostgreSQL, one SQLite file per service by default."""

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Dialect,
    Engine,
    String,
    TypeDecorator,
    bindparam,
    event,
    func,
    literal,
    text,
    true,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, SQLModel, create_engine, select

from shared import migrations
from shared.settings import Settings
from shared.uow import UnitOfWork

ModelT = TypeVar("ModelT", bound=SQLModel)


def database_url(settings: Settings, service: str) -> str:
    """PostgreSQL when DATABASE_URL is set, else the service's own SQLite file under the data dir."""
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.data_dir / f'{service}.db'}"


def make_engine(settings: Settings, service: str) -> Engine:
    """An engine whose tables of schema `service` land in that schema (PostgreSQL) or file (SQLite)."""
    url = database_url(settings, service)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite has no schemas: each service has its own file, so the schema name is dropped.
        return engine.execution_options(schema_translate_map={service: None})
    # The pool holds a connection for each thread that may work at once (API requests and consumer
    # batches run in worker threads): an overflow connection is opened and closed for every use.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        connect_args={
            "connect_timeout": settings.database_connect_timeout_s,
            # psycopg prepares a statement after its 5th use; PostgreSQL may then keep a generic plan made
            # while a table was nearly empty (a sequential scan) long after the table has grown.
            "options": "-c plan_cache_mode=force_custom_plan",
        },
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def present(session: Session, column: Any, values: Collection[str], *also: ColumnElement[bool]) -> set[str]:
    """Which of `values` occur in the text `column` (in rows where `also` holds), in one query.

    A batch asks this for its few hundred ids. On PostgreSQL `column IN (…)` is planned from the
    table's statistics, and a table never analysed (autovacuum off, or behind on a table that grows
    fast) gets the planner's default selectivity per value: a few hundred values look like the whole
    table, which is then read in full for every batch. Each value is looked up by a lateral subquery instead, one
    index probe per value whatever the statistics say. (A plain semi-join was not enough: with the
    consumer as the extra condition, PostgreSQL read every row of that consumer through the first
    column of the inbox's key and hashed them, once per batch.) SQLite always probes the index.
    """
    if not values:
        return set()
    if session.get_bind().dialect.name != "postgresql":
        return set(session.execute(select(column).where(column.in_(values), *also).distinct()).scalars())
    wanted = _values_table(values)
    # Run once per value with the value as its parameter: never a hash over a scan of the table.
    probe = select(literal(1)).where(column == wanted.c.value, *also).limit(1).lateral("probe")
    query = select(wanted.c.value).select_from(wanted).join(probe, true())
    return set(session.execute(query).scalars())


def rows_with(session: Session, model: type[ModelT], column: Any, values: Collection[str]) -> list[ModelT]:
    """The rows of `model` whose text `column` is one of `values`, found by index probes (see `present`)."""
    if not values:
        return []
    if session.get_bind().dialect.name != "postgresql":
        return list(session.exec(select(model).where(column.in_(values))))
    wanted = _values_table(values)
    return list(session.exec(select(model).where(column.in_(select(wanted.c.value)))))


def _values_table(values: Collection[str]) -> Any:
    return (
        func.unnest(bindparam("values", list(values), type_=ARRAY(String)))
        .table_valued("value")
        .render_derived(name="wanted")
    )


def upgrade(engine: Engine, service: str) -> None:
    """Apply the service's migrations up to the latest (idempotent; run by `marugoto db upgrade`)."""
    migrations.upgrade(engine, service)


def is_ready(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError:
        return False
    return True


def is_transient(exc: BaseException) -> bool:
    """A failure that may pass by itself (connection lost, lock timeout), as opposed to a bad message."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


U = TypeVar("U", bound=UnitOfWork)


@overload
def transaction(engine: Engine) -> AbstractContextManager[UnitOfWork]: ...
@overload
def transaction(engine: Engine, unit: type[U]) -> AbstractContextManager[U]: ...
def transaction(engine: Engine, unit: type[UnitOfWork] = UnitOfWork) -> AbstractContextManager[UnitOfWork]:
    """A unit of work (of type `unit`) whose work commits together at the end of the block, or not at all."""
    return _transaction(engine, unit)


@contextmanager
def _transaction(engine: Engine, unit: type[UnitOfWork]) -> Iterator[UnitOfWork]:
    with unit(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """A read-only session whose queries all see one consistent state of the database.

    Under READ COMMITTED (PostgreSQL's default) and SQLite's autocommit reads, each query sees the
    commits made before it, so a report read in several queries could count a case in one table and
    miss it in another.
    """
    if engine.dialect.name == "postgresql":
        with Session(engine.execution_options(isolation_level="REPEATABLE READ")) as session, session.begin():
            session.connection().exec_driver_sql("SET TRANSACTION READ ONLY")
            yield session
        return
    with Session(engine) as session, session.begin():
        # pysqlite opens no transaction for a SELECT; an explicit one pins the WAL snapshot.
        session.connection().exec_driver_sql("BEGIN")
        yield session


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
