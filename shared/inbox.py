"""Idempotent consumer: the id of each applied event is recorded in the same transaction as its effect."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlmodel import Field, Session, SQLModel, col

from shared import db
from shared.db import UTCDateTime


class ProcessedEventBase(SQLModel):
    """Columns of a service's `processed_event` table; each service declares its own table from this."""

    consumer: str = Field(primary_key=True, max_length=100)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


def claim(session: Session, model: type[ProcessedEventBase], *, consumer: str, event_id: str) -> bool:
    """Record that `consumer` applies `event_id` now; False if it already did (then apply nothing).

    Two instances racing on the same event both get True here, but only one can commit: the other's
    transaction fails on the primary key and is retried, and then sees the event as processed.
    """
    if session.get(model, (consumer, event_id)) is not None:
        return False
    session.add(model(consumer=consumer, event_id=event_id))
    return True


def claimed(session: Session, model: type[ProcessedEventBase], *, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """The ids among `event_ids` that `consumer` has already applied (one query for a whole batch)."""
    return db.present(session, col(model.event_id), set(event_ids), col(model.consumer) == consumer)
