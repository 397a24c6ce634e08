"""Exactly-once consumption: each consumer's position per topic-partition, committed in the same
transaction as the effects of the records before it, and a bounded window of applied event ids.

A redelivered record (a consumer killed between its database commit and its offset commit, a partition
moving between instances) sits below the stored position and is skipped without looking at its id, however
long after it comes back; on assignment the consumer seeks to the stored positions, so it is not even
fetched again. The same event can also arrive at a different offset: a relay that dies between the
broker's acknowledgement and deleting its outbox rows publishes them again when it (or another instance)
resumes, and a producer may retry a send. Those copies come soon after the original, so the ids of the
events applied in the last `Settings.dedup_window_s` are kept to recognise them, and older ones are
pruned: the tables hold one row per partition plus the window, not one row per event of the log.
A replayed dead letter is addressed to the consumer that dead-lettered it (the others skip it) and its id
is kept past the window, so replaying it again applies nothing twice however late.

The tracking-record pattern of the eventsourcing library, and of Kafka Connect's exactly-once sinks.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import BigInteger, Engine
from sqlmodel import Field, Session, SQLModel, col, delete, select

from shared import db
from shared.db import UTCDateTime

Partition = tuple[str, int]


class ProcessedEventBase(SQLModel):
    """Columns of a service's `processed_event` table: the ids applied lately (and replayed ones, kept)."""

    consumer: str = Field(primary_key=True, max_length=100)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime, index=True)
    # A replayed dead letter's id outlives the window: the same letter may be replayed again any time.
    kept: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class ConsumerPositionBase(SQLModel):
    """Columns of a service's `consumer_position` table: the next offset to apply, per topic-partition."""

    consumer: str = Field(primary_key=True, max_length=100)
    topic: str = Field(primary_key=True, max_length=200)
    partition: int = Field(primary_key=True)
    next_offset: int = Field(sa_type=BigInteger)
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


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


def positions(
    session: Session, model: type[ConsumerPositionBase], *, consumer: str, partitions: Iterable[Partition]
) -> dict[Partition, int]:
    """The stored next offsets of `partitions` (absent: nothing applied yet), their rows locked until the
    transaction ends, so that two instances applying the same records commit one after the other."""
    wanted = set(partitions)
    if not wanted:
        return {}
    query = (
        select(model.topic, model.partition, model.next_offset)
        .where(model.consumer == consumer, sa.tuple_(col(model.topic), col(model.partition)).in_(sorted(wanted)))
        .with_for_update()
    )
    return {(t, p): offset for t, p, offset in session.exec(query).all()}


def advance(
    session: Session,
    model: type[ConsumerPositionBase],
    *,
    consumer: str,
    stored: Mapping[Partition, int],
    reached: Mapping[Partition, int],
) -> None:
    """Store the next offsets `reached` (each only forward), in the caller's transaction."""
    now = datetime.now(UTC)
    for (topic, partition), next_offset in reached.items():
        if (topic, partition) in stored:
            if next_offset > stored[(topic, partition)]:
                session.exec(
                    sa.update(model)
                    .where(
                        col(model.consumer) == consumer,
                        col(model.topic) == topic,
                        col(model.partition) == partition,
                    )
                    .values(next_offset=next_offset, updated_at=now)
                )
        else:
            session.add(
                model(consumer=consumer, topic=topic, partition=partition, next_offset=next_offset, updated_at=now)
            )


def advance_positions(
    engine: Engine, model: type[ConsumerPositionBase], *, consumer: str, reached: Mapping[Partition, int]
) -> None:
    """Move the stored positions forward to `reached` in a transaction of their own (records that were
    read but applied by no transaction: dead-lettered, or skipped)."""
    with db.transaction(engine) as session:
        stored = positions(session, model, consumer=consumer, partitions=reached)
        advance(session, model, consumer=consumer, stored=stored, reached=reached)


def stored_positions(engine: Engine, model: type[ConsumerPositionBase], *, consumer: str) -> dict[Partition, int]:
    """Every stored next offset of `consumer` (where a newly assigned partition resumes)."""
    with Session(engine) as session:
        rows = session.exec(select(model.topic, model.partition, model.next_offset).where(model.consumer == consumer))
        return {(t, p): offset for t, p, offset in rows.all()}


def prune(engine: Engine, model: type[ProcessedEventBase], *, window_s: float, now: datetime | None = None) -> int:
    """Forget the ids applied before the window (but the replayed ones); returns how many rows went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=window_s)
    with db.transaction(engine) as session:
        result = session.exec(delete(model).where(col(model.processed_at) < cutoff, col(model.kept).is_(False)))
        return int(result.rowcount or 0)
