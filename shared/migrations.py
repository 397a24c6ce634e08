"""Alembic migrations: one forward-only history per service, in `services/<service>/migrations/`.

A service's tables and its `alembic_version` table are in the schema named after the service. On
PostgreSQL that is a schema of the database. A SQLite file holds one service and has no schema names;
the services' engines drop the name (`schema_translate_map`), but Alembic's own DDL (ALTER TABLE, the
table copies of batch operations) ignores that map (sqlalchemy/alembic#555), so migrations run on the
file attached under the service's name to an in-memory database instead.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command, context
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations.ops import MigrationScript
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, TypeDecorator, create_engine, event, inspect, text
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

VERSION_TABLE = "alembic_version"


class UnversionedSchema(Exception):
    """The service's tables exist without a migration history: an older `create_all` made them."""


def config(service: str, connection: Connection) -> Config:
    """Alembic's configuration of one service's migrations, run on `connection`."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", f"services.{service}:migrations")
    alembic_config.attributes["connection"] = connection
    return alembic_config


def upgrade(engine: Engine, service: str, revision: str = "head") -> None:
    """Apply the service's migrations up to `revision`, the latest by default (on PostgreSQL in one
    transaction); at that revision already, nothing."""
    if engine.dialect.name == "sqlite":
        path = str(engine.url.database)
        with _attached(service, path) as connection:
            _refuse_unversioned(connection, service, where=path, remedy=f"Remove {path}")
            command.upgrade(config(service, connection), revision)
        return
    with engine.begin() as connection:
        remedy = f'Back it up if you need its data, drop it (DROP SCHEMA "{service}" CASCADE)'
        _refuse_unversioned(connection, service, where=f'schema "{service}"', remedy=remedy)
        command.upgrade(config(service, connection), revision)


def revision(service: str, message: str) -> Path | None:
    """Write the service's next migration: what the models changed since the latest one (None: nothing).

    The models are compared with a throw-away in-memory database brought to the latest migration.
    """
    with _attached(service, ":memory:") as connection:
        alembic_config = config(service, connection)
        command.upgrade(alembic_config, "head")
        written = command.revision(
            alembic_config,
            message=message,
            autogenerate=True,
            rev_id=f"{len(list(ScriptDirectory.from_config(alembic_config).walk_revisions())) + 1:04d}",
            process_revision_directives=_skip_if_empty,
        )
    return Path(written.path) if written and not isinstance(written, list) else None


def service_metadata(service: str) -> MetaData:
    """The service's table models (already imported), apart from every other service's."""
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if table.schema == service:
            table.to_metadata(metadata)
    return metadata


def run_environment(service: str) -> None:
    """The body of each service's `migrations/env.py`."""
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported: run `marugoto db upgrade`")
    connection: Connection = context.config.attributes["connection"]
    if connection.dialect.name == "postgresql":
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
    context.configure(
        connection=connection,
        target_metadata=service_metadata(service),
        version_table_schema=service,
        include_schemas=True,
        include_name=lambda name, type_, _parent: type_ != "schema" or name == service,
        # Revisions also run on SQLite, which changes a table by copying it into a new one.
        render_as_batch=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def _attached(service: str, path: str) -> Iterator[Connection]:
    """A connection, in a transaction, to the SQLite database at `path` as the schema `service`."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute(f'ATTACH ? AS "{service}"', (path,)))
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _refuse_unversioned(connection: Connection, service: str, *, where: str, remedy: str) -> None:
    inspector = inspect(connection)
    if service not in inspector.get_schema_names():
        return
    tables = set(inspector.get_table_names(schema=service))
    if not tables or VERSION_TABLE in tables:
        return
    refill = (
        " `marugoto metrics rebuild` then recomputes the indicators from the topics."
        if service == "metrics"
        else " Its rows are lost unless you copy them back yourself."
    )
    raise UnversionedSchema(
        f"{service}: {where} has tables but no migration history ({VERSION_TABLE}): an older Marugoto "
        f"created it, and which migrations it lacks cannot be told. {remedy} and run "
        f"`marugoto db upgrade --service {service}` again.{refill}"
    )


def _render_item(type_: str, item: Any, _context: AutogenContext) -> str | Literal[False]:
    # Our own column types (UTCDateTime) are written as the type they store, so that a migration never
    # imports application code; SQLModel's AutoString renders as itself (the template imports sqlmodel).
    if type_ == "type" and isinstance(item, TypeDecorator) and not isinstance(item, AutoString):
        return f"sa.{item.impl!r}"
    return False


def _skip_if_empty(_context: MigrationContext, _revision: Any, directives: list[MigrationScript]) -> None:
    upgrade_ops = directives[0].upgrade_ops
    if upgrade_ops is not None and upgrade_ops.is_empty():
        directives.clear()
