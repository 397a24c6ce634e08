"""Transactional outbox: events are stored with the state change that caused them, then relayed to Kafka.

A service writes its rows and the outbox row in one transaction (`stage`); the relay publishes the
rows in insertion order and deletes them once the broker has acknowledged them, so every row in the
table is one still to publish. A crash between publish and delete republishes the row on restart,
which the consumers' idempotency (`shared.inbox`) makes harmless: at-least-once delivery,
exactly-once effect.

The table is a queue: rows come and go all the time, and on PostgreSQL each deleted row stays behind
as a dead row version until a VACUUM reclaims it. Until then every fetch of the oldest rows walks
past all of them, so a fetch gets slower with every event ever published. Autovacuum usually keeps
up, but it can be off, or slow to visit a busy table; so the relay vacuums its own table after
every `vacuum_every` deleted rows, which keeps the fetch's cost flat (bench/README.md).

The outbox is also kept short under a flood: `OutboxGate` holds a service's consumer while
`outbox_backlog_limit` events wait, so the backlog stays in Kafka (which keeps it for free) and not
in the table. In one process the consumer's batches take the interpreter from the relay, which then
falls further behind for as long as the flood lasts; every referral waits longer, and the growing
table slows each VACUUM and fetch (docs/adr/0002-transactional-outbox-and-gate.md).
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import anyio
import sqlalchemy as sa
import structlog
from sqlalchemy import Connection, Engine, Text, delete, func, text
from sqlmodel import Field, Session, SQLModel, col, select

from shared.db import UTCDateTime
from shared.events import Envelope, encode
from shared.uow import unit_of

log = structlog.get_logger()

Publish = Callable[[str, bytes, bytes, str], Awaitable[Awaitable[object]]]
"""Publish(topic, key, payload, event_id): hands the message to the producer and returns an awaitable of
the broker's acknowledgement, so that a batch is sent without waiting for each message in turn. The
event id (the CloudEvents `id`) is the message's correlation id."""


class OutboxBase(SQLModel):
    """Columns of a service's `outbox` table; each service declares its own table from this."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64, unique=True)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200)
    payload: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)


def stage(session: Session, model: type[OutboxBase], envelope: Envelope[Any]) -> None:
    """Add an event to the outbox in the caller's unit of work; its key is the envelope's subject."""
    unit_of(session).add_row(
        model,
        event_id=envelope.id,
        topic=envelope.data.topic,
        key=envelope.subject,
        payload=encode(envelope).decode(),
    )


def pending_count(engine: Engine, model: type[OutboxBase]) -> int:
    """How many staged events are not yet published (the outbox backlog)."""
    return backlog(engine, model)[0]


def backlog(engine: Engine, model: type[OutboxBase]) -> tuple[int, float]:
    """The outbox backlog: how many events wait, and how many seconds the oldest has waited (the lag)."""
    with Session(engine) as session:
        query = select(func.count(), func.min(model.created_at))
        count, oldest = session.exec(query).one()
    if oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite returns the aggregate without the column type's conversion
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())


def waiting_at_least(engine: Engine, model: type[OutboxBase], limit: int) -> bool:
    """True if about `limit` events or more wait in the outbox.

    Ids are handed out in order and the relay deletes from the lowest, so the span of the ids left
    counts the rows (ids of rolled-back transactions count too, which errs on the side of holding).
    Two index lookups, whatever the backlog.
    """
    with Session(engine) as session:
        lowest, highest = session.exec(select(func.min(model.id), func.max(model.id))).one()
    return lowest is not None and highest is not None and highest - lowest + 1 >= limit


class OutboxGate:
    """Holds a consumer's next batch while the service's outbox is full; see the module's docstring.

    Any instance's relay may be the one that empties the outbox, so the gate reads the table. A hold
    lasts at most `max_hold_s` (well below aiokafka's `max_poll_interval_ms`, 300 s, so the consumer
    keeps its partitions); if the relay is stuck the batch then goes ahead, and the hold is logged.
    """

    def __init__(
        self,
        engine: Engine,
        model: type[OutboxBase],
        limit: int,
        *,
        poll_s: float = 0.05,
        max_hold_s: float = 60.0,
    ) -> None:
        self._engine = engine
        self._model = model
        self.limit = limit
        self._poll_s = poll_s
        self._max_hold_s = max_hold_s
        self._released = asyncio.Event()
        self.holds = 0

    def release(self) -> None:
        """Let every batch through from now on (the service is stopping: in-flight batches finish)."""
        self._released.set()

    async def wait_for_room(self) -> None:
        """Return once fewer than `limit` events wait (or the hold has lasted `max_hold_s`)."""
        held_since: float | None = None
        while not self._released.is_set():
            if not await anyio.to_thread.run_sync(waiting_at_least, self._engine, self._model, self.limit):
                break
            now = time.monotonic()
            if held_since is None:
                held_since = now
                self.holds += 1
            elif now - held_since >= self._max_hold_s:
                log.warning(
                    "consumer_hold_ended_outbox_still_full", limit=self.limit, held_s=round(now - held_since, 1)
                )
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), timeout=self._poll_s)


class Pending(NamedTuple):
    """An outbox row still to publish, as the relay reads it."""

    id: int
    event_id: str
    topic: str
    key: str
    payload: str


class OutboxRelay:
    """Publishes a service's outbox to Kafka, in order, until stopped."""

    def __init__(
        self,
        engine: Engine,
        model: type[OutboxBase],
        publish: Publish,
        *,
        batch_size: int = 1000,
        poll_interval_s: float = 0.5,
        max_backoff_s: float = 10.0,
        vacuum_every: int = 10_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seal: Callable[[list["Pending"]], list["Pending"]] | None = None,
    ) -> None:
        self._engine = engine
        # Seals the sensitive fields of a batch's payloads under their cases' keys (shared/sealing.py), in
        # the relay's thread: the outbox row keeps the event in clear only until it is published.
        self._seal = seal
        self._model = model
        self._publish = publish
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._vacuum_every = vacuum_every
        self._deleted_since_vacuum = 0
        self._sleep = sleep
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._leader: Connection | None = None
        self.published_total = 0

    def notify(self) -> None:
        """Wake the relay after a commit; safe to call from any thread."""
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        """Relay until `stop()`; broker or database failures are logged and retried with back-off."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        backoff = self._poll_interval_s
        while not self._stopping:
            try:
                leading = await anyio.to_thread.run_sync(self._lead)
                published = await self.publish_pending() if leading else 0
                backoff = self._poll_interval_s
            except Exception as exc:
                log.warning("outbox_relay_failed", error=repr(exc), retry_in_s=backoff)
                await anyio.to_thread.run_sync(self.resign)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            if published < self._batch_size:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval_s)

    def _lead(self) -> bool:
        """True if this relay may publish: on PostgreSQL, while it holds the outbox's advisory lock.

        Several instances of a service share one outbox table; if all of them relayed it, every event
        would be published once per instance, and two relays could interleave a case's events. A
        session-level advisory lock makes one relay the publisher; PostgreSQL frees it when that
        relay's connection ends (a stop, a crash, a lost network), and another instance takes over.
        """
        if self._engine.dialect.name != "postgresql":
            return True  # SQLite: one file per service process, so one relay
        if self._leader is not None:
            self._leader.execute(text("SELECT 1"))  # a lost connection means a lost lock: raise, resign
            return True
        connection = self._engine.connect()
        name = f"{self._model.__table__.schema}.{self._model.__tablename__}"  # type: ignore[attr-defined]
        if connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:name))"), {"name": name}).scalar():
            connection.commit()
            self._leader = connection
            log.info("outbox_relay_leading", outbox=name)
            return True
        connection.rollback()
        connection.close()
        return False

    def resign(self) -> None:
        """Give up publishing (release the advisory lock); called when the service stops."""
        leader, self._leader = self._leader, None
        if leader is not None:
            with contextlib.suppress(Exception):
                leader.invalidate()  # closes the session, which releases the lock

    def stop(self) -> None:
        """Ask `run()` to return after the batch in hand."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows in order; returns how many were published.

        Rows are handed to the producer in id order without waiting for each acknowledgement (the
        producer keeps one request in flight per partition, so a case's events stay in order). A row
        that cannot be handed over stops the batch there; then the rows acknowledged before the first
        failure are marked published, so the retry starts at the failed row and publishes none of
        them again. A row after the failure that the broker acknowledged all the same is published
        again on the retry, which consumers' idempotency makes harmless.
        """
        rows = await anyio.to_thread.run_sync(self._fetch_pending)
        acks: list[Awaitable[object]] = []
        failure: BaseException | None = None
        for row in rows:
            try:
                acks.append(await self._publish(row.topic, row.key.encode(), row.payload.encode(), row.event_id))
            except Exception as exc:
                failure = exc
                break
        results = await asyncio.gather(*acks, return_exceptions=True)
        acknowledged = next((i for i, r in enumerate(results) if isinstance(r, BaseException)), len(results))
        if acknowledged < len(results):
            failure = results[acknowledged]  # type: ignore[assignment]
        done = rows[:acknowledged]
        if done:
            await anyio.to_thread.run_sync(self._delete_published, [row.id for row in done])
            self.published_total += len(done)
        if failure is not None:
            raise failure
        return len(done)

    async def drain(self) -> int:
        """Publish everything pending now if this relay leads (at shutdown); returns how many were published."""
        if not await anyio.to_thread.run_sync(self._lead):
            return 0
        total = 0
        while published := await self.publish_pending():
            total += published
        return total

    def _fetch_pending(self) -> list[Pending]:
        # Plain rows, not ORM objects: building a model instance per event took half of the fetch (py-spy).
        model = self._model
        columns = (col(model.id), col(model.event_id), col(model.topic), col(model.key), col(model.payload))
        query = sa.select(*columns).order_by(col(model.id)).limit(self._batch_size)  # sqlmodel's takes 4 at most
        with self._engine.connect() as connection:
            rows = [Pending._make(row) for row in connection.execute(query)]
        return self._seal(rows) if self._seal is not None and rows else rows

    def _delete_published(self, ids: list[int]) -> None:
        model = self._model
        with self._engine.begin() as connection:
            connection.execute(delete(model).where(col(model.id).in_(ids)))
        self._deleted_since_vacuum += len(ids)
        if self._vacuum_every and self._deleted_since_vacuum >= self._vacuum_every:
            self.vacuum()

    def vacuum(self) -> None:
        """Reclaim the deleted rows' space on PostgreSQL (VACUUM takes no lock that stops writers).

        A failure is logged, not raised: the rows are published and deleted already, and the next
        VACUUM (or autovacuum) reclaims them as well.
        """
        self._deleted_since_vacuum = 0
        if self._engine.dialect.name != "postgresql":
            return  # SQLite reuses a deleted row's page without being asked
        table = self._model.__table__  # type: ignore[attr-defined]
        name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text(f"VACUUM {name}"))  # VACUUM cannot run inside a transaction
        except Exception as exc:
            log.warning("outbox_vacuum_failed", outbox=name, error=repr(exc))
            return
        log.debug("outbox_vacuumed", outbox=name)
