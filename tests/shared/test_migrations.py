"""Migrations: each service's history builds exactly the tables of its models, on PostgreSQL and SQLite;
upgrading again changes nothing; a database made before migrations is refused and left as it was."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect, text
from sqlmodel import Session, SQLModel, select

from services.cli import main
from services.conference.models import ConferenceProcessedEvent
from services.intake.models import IntakeProcessedEvent
from services.metrics.models import MetricsProcessedEvent
from services.router.models import RouterProcessedEvent
from shared import db, migrations
from shared.inbox import ProcessedEventBase
from shared.migrations import UnversionedSchema
from shared.settings import SERVICES, Settings
from tests.conftest import new_database

PROCESSED_EVENTS: dict[str, type[ProcessedEventBase]] = {
    "intake": IntakeProcessedEvent,
    "router": RouterProcessedEvent,
    "conference": ConferenceProcessedEvent,
    "metrics": MetricsProcessedEvent,
}


@pytest.fixture(params=["postgresql", "sqlite"])
def settings(request: pytest.FixtureRequest, postgres_admin_url: str, tmp_path: Path) -> Iterator[Settings]:
    """A new, empty database: one PostgreSQL database for all services, or one SQLite file each."""
    if request.param == "sqlite":
        yield Settings(DATABASE_URL=None, data_dir=tmp_path / "data")
        return
    with new_database(postgres_admin_url) as url:
        yield Settings(DATABASE_URL=url, data_dir=tmp_path / "data")


@pytest.fixture
def engines(settings: Settings) -> Iterator[dict[str, Engine]]:
    engines = {service: db.make_engine(settings, service) for service in SERVICES}
    yield engines
    for engine in engines.values():
        engine.dispose()


@contextmanager
def inspected(engine: Engine, service: str) -> Iterator[Connection]:
    """A connection on which the service's tables are in a schema named after the service."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            yield conn
        return
    # A SQLite file has no schema names: attach it under the service's name, as the models place it.
    attached = create_engine("sqlite://")
    event.listen(attached, "connect", lambda dbapi, _: dbapi.execute(f"ATTACH '{engine.url.database}' AS {service}"))
    try:
        with attached.connect() as conn:
            yield conn
    finally:
        attached.dispose()


def models_of(service: str) -> MetaData:
    """The service's table models alone."""
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if table.schema == service:
            table.to_metadata(metadata)
    return metadata


def differences(engine: Engine, service: str) -> list[Any]:
    """What Alembic finds between the service's tables in the database and its models."""
    with inspected(engine, service) as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _parent: type_ != "schema" or name == service,
                "version_table_schema": service,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, models_of(service)))


def current_revision(engine: Engine, service: str) -> str | None:
    with inspected(engine, service) as conn:
        return MigrationContext.configure(conn, opts={"version_table_schema": service}).get_current_revision()


def head(service: str) -> str | None:
    config = Config()
    config.set_main_option("script_location", f"services.{service}:migrations")
    return ScriptDirectory.from_config(config).get_current_head()


def table_names(engine: Engine, service: str) -> set[str]:
    with inspected(engine, service) as conn:
        return set(inspect(conn).get_table_names(schema=service))


def statements_run(engine: Engine) -> list[str]:
    """Every SQL statement the engine runs from now on."""
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _conn, _cursor, sql, *_args: statements.append(sql))
    return statements


def test_every_service_at_head_has_exactly_the_tables_of_its_models(engines: dict[str, Engine]) -> None:
    for service, engine in engines.items():
        missing = {diff[1].name for diff in differences(engine, service) if diff[0] == "add_table"}
        models = {table.name for table in models_of(service).tables.values()}
        assert missing == models, "the comparison sees every table of the models"

        db.upgrade(engine, service)

        assert differences(engine, service) == [], service
        assert current_revision(engine, service) == head(service) is not None
    if engines["intake"].dialect.name == "postgresql":
        with engines["intake"].connect() as conn:
            assert inspect(conn).get_table_names(schema="public") == [], "every table is in its service's schema"


def test_upgrading_again_changes_nothing(engines: dict[str, Engine]) -> None:
    for service, engine in engines.items():
        db.upgrade(engine, service)
        with db.transaction(engine) as session:
            session.add(PROCESSED_EVENTS[service](consumer="c", event_id="e-1"))
        statements = statements_run(engine)

        db.upgrade(engine, service)

        changes = [s for s in statements if re.match(r"\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", s, re.I)]
        expected = [f'CREATE SCHEMA IF NOT EXISTS "{service}"'] if engine.dialect.name == "postgresql" else []
        assert changes == expected, "no table, index, trigger or version row is written"
        assert current_revision(engine, service) == head(service)
        with Session(engine) as session:
            assert session.exec(select(PROCESSED_EVENTS[service].event_id)).all() == ["e-1"], "rows are kept"


def test_a_database_made_before_migrations_is_refused_and_left_as_it_was(
    settings: Settings, engines: dict[str, Engine], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = engines["metrics"]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:  # what `marugoto db upgrade` did before migrations
        if postgres:
            conn.execute(text('CREATE SCHEMA "metrics"'))
        SQLModel.metadata.create_all(conn, tables=list(models_of("metrics").tables.values()))
    before = table_names(engine, "metrics")

    with pytest.raises(UnversionedSchema) as refused:
        db.upgrade(engine, "metrics")

    message = str(refused.value)
    assert "has tables but no migration history" in message
    assert "marugoto metrics rebuild" in message
    if postgres:
        assert 'DROP SCHEMA "metrics" CASCADE' in message
    else:
        assert f"Remove {settings.data_dir / 'metrics.db'}" in message
    assert table_names(engine, "metrics") == before, "nothing was added, not even a version table"

    monkeypatch.delenv("DATABASE_URL", raising=False)
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MARUGOTO_DATA_DIR", str(settings.data_dir))
    assert main(["db", "upgrade", "--service", "metrics"]) == 1
    assert message in capsys.readouterr().err, "the command says what to do, without a traceback"


@pytest.mark.parametrize("service", ["intake", "router", "conference"])
def test_outbox_upgrade_keeps_the_rows_still_to_publish_and_drops_the_published(
    engines: dict[str, Engine], service: str
) -> None:
    """Revision 0002: the relay deletes what it publishes, so rows published under 0001 go, and the rest stay."""
    engine = engines[service]
    migrations.upgrade(engine, service, "0001")
    with inspected(engine, service) as conn:
        for event_id, published_at in (("published", "2026-01-01 00:00:00+00"), ("pending", None)):
            conn.execute(
                text(
                    f'INSERT INTO "{service}".outbox (event_id, topic, key, payload, created_at, published_at) '
                    "VALUES (:event_id, 't', 'k', '{}', '2026-01-01 00:00:00+00', :published_at)"
                ),
                {"event_id": event_id, "published_at": published_at},
            )
        conn.commit()

    db.upgrade(engine, service)

    assert differences(engine, service) == []
    with inspected(engine, service) as conn:
        assert conn.execute(text(f'SELECT event_id FROM "{service}".outbox')).scalars().all() == ["pending"]
