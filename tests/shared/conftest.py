"""Engines on the throw-away service schema of `tests.shared.tables`, its tables created."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from shared import db
from shared.settings import Settings
from tests.shared.tables import SCHEMA, create_tables


def _engine(settings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(settings, SCHEMA)
    create_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(settings: Settings) -> Iterator[Engine]:
    """This test's PostgreSQL database."""
    yield from _engine(settings)


@pytest.fixture
def engine(postgres_engine: Engine) -> Engine:
    """The engine a test of these modules uses unless it asks for another: PostgreSQL."""
    return postgres_engine


@pytest.fixture(params=["postgresql", "sqlite"])
def either_engine(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Engine]:
    """PostgreSQL, then an SQLite file: for code that has a path of its own on each."""
    if request.param == "sqlite":
        settings = settings.model_copy(update={"database_url": None, "data_dir": tmp_path})
    yield from _engine(settings)
