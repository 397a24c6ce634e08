"""Tables of a throw-away service schema, for testing the shared outbox and inbox on PostgreSQL."""

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import JSON, Field, SQLModel

from shared.db import UTCDateTime
from shared.inbox import ConsumerPositionBase, ProcessedEventBase
from shared.outbox import OutboxBase

SCHEMA = "spinetest"


class Effect(SQLModel, table=True):
    """One applied event's visible effect."""

    __tablename__ = "effect"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64)
    case_id: str = Field(max_length=64)


class Document(SQLModel, table=True):
    """A row with the column types that need binding: JSON, an aware time, a nullable text."""

    __tablename__ = "document"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    body: dict[str, Any] = Field(sa_type=JSON)
    at: datetime = Field(sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=50)


class TestOutbox(OutboxBase, table=True):
    """The schema's outbox."""

    __test__ = False
    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class TestProcessedEvent(ProcessedEventBase, table=True):
    """The schema's processed events."""

    __test__ = False
    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class TestConsumerPosition(ConsumerPositionBase, table=True):
    """The schema's consumer positions."""

    __test__ = False
    __tablename__ = "consumer_position"
    __table_args__ = {"schema": SCHEMA}


def create_tables(engine: Engine) -> None:
    """Create the schema and its tables (a test schema has no migrations)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        SQLModel.metadata.create_all(conn, tables=[t for t in SQLModel.metadata.sorted_tables if t.schema == SCHEMA])
