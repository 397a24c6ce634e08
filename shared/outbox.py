"""Transactional outbox: events are stored with the state change that caused them, then relayed to Kafka.

A service writes its rows and the outbox row in one transaction (`stage`); the relay publishes pending
rows in insertion order and marks them published. A crash between publish and mark republishes the
row on restart, which the consumers' idempotency (`shared.inbox`) makes harmless: at-least-once
delivery, exactly-once effect.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog
from sqlalchemy import Engine, Text, func, update
from sqlmodel import Field, Session, SQLModel, col, select

from shared.db import UTCDateTime
from shared.events import Envelope, encode

log = structlog.get_logger()

Publish = Callable[[str, bytes, bytes], Awaitable[None]]
"""Publish(topic, key, payload): returns once the broker acknowledged the message."""


class OutboxBase(SQLModel):
    """Columns of a service's `outbox` table; each service declares its own table from this."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64, unique=True)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200)
    payload: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC), sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)


def stage(session: Session, model: type[OutboxBase], envelope: Envelope[Any]) -> None:
    """Add an event to the outbox inside the caller's transaction; its key is the envelope's subject."""
    session.add(
        model(
            event_id=envelope.id,
            topic=envelope.data.topic,
            key=envelope.subject,
            payload=encode(envelope).decode(),
        )
    )


def pending_count(engine: Engine, model: type[OutboxBase]) -> int:
    """How many staged events are not yet published (the outbox backlog)."""
    return backlog(engine, model)[0]


def backlog(engine: Engine, model: type[OutboxBase]) -> tuple[int, float]:
    """The outbox backlog: how many events wait, and how many seconds the oldest has waited (the lag)."""
    with Session(engine) as session:
        query = select(func.count(), func.min(model.created_at)).where(col(model.published_at).is_(None))
        count, oldest = session.exec(query).one()
    if oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite returns the aggregate without the column type's conversion
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())


class OutboxRelay:
    """Publishes a service's outbox to Kafka, in order, until stopped."""

    def __init__(
        self,
        engine: Engine,
        model: type[OutboxBase],
        publish: Publish,
        *,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        max_backoff_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._engine = engine
        self._model = model
        self._publish = publish
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
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
                published = await self.publish_pending()
                backoff = self._poll_interval_s
            except Exception as exc:
                log.warning("outbox_relay_failed", error=repr(exc), retry_in_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            if published < self._batch_size:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval_s)

    def stop(self) -> None:
        """Ask `run()` to return after the batch in hand."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows in order; returns how many were published.

        A failed publish stops the batch there, so no later row overtakes it. The rows published
        before it are still marked, so the retry does not publish them a second time.
        """
        rows = await anyio.to_thread.run_sync(self._fetch_pending)
        published: list[int | None] = []
        try:
            for row in rows:
                await self._publish(row.topic, row.key.encode(), row.payload.encode())
                published.append(row.id)
        finally:
            if published:
                await anyio.to_thread.run_sync(self._mark_published, published)
                self.published_total += len(published)
        return len(published)

    async def drain(self) -> int:
        """Publish everything pending now (used at shutdown); returns how many were published."""
        total = 0
        while published := await self.publish_pending():
            total += published
        return total

    def _fetch_pending(self) -> list[OutboxBase]:
        model = self._model
        with Session(self._engine, expire_on_commit=False) as session:
            query = (
                select(model).where(col(model.published_at).is_(None)).order_by(col(model.id)).limit(self._batch_size)
            )
            return list(session.exec(query).all())

    def _mark_published(self, ids: list[int | None]) -> None:
        model = self._model
        with Session(self._engine) as session, session.begin():
            session.exec(update(model).where(col(model.id).in_(ids)).values(published_at=datetime.now(UTC)))
