"""Kafka consumers: events applied in batches, each exactly once, with bounded retries and a dead-letter topic.

A consumer group takes records in batches (up to `kafka_consumer_batch_size`) and applies a batch in
one database transaction: each event's effect and its row in `processed_event` commit together, and the
group's offsets are committed only after that transaction. One commit per batch instead of one per event
is what lets a consumer keep up with the broker.

A message that can never be applied (not JSON, not the expected event, breaks a domain rule) is
published to `<topic>.dlq` with the reason and its original bytes, and the stream moves on: when a
batch fails for such a reason, its events are applied one by one so that only the bad one is
dead-lettered. A transient failure (database or broker unavailable) is retried with bounded back-off
and then re-raised, so the batch is redelivered from its first offsets and never dead-lettered.
Dead letters are written at least once: a bad record in a batch that is redelivered after a transient
failure is dead-lettered again (a replay applies it once all the same).
"""

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import anyio
import structlog
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from shared.case_keys import CaseKeys, MissingCaseKey
from shared.db import is_transient, transaction
from shared.deadletters import REPLAY_FOR_HEADER
from shared.errors import DomainError
from shared.events import Envelope, EventData, InvalidEvent, decode, decode_object
from shared.inbox import (
    ConsumerPositionBase,
    ProcessedEventBase,
    advance,
    advance_positions,
    claimed,
    positions,
    stored_positions,
)
from shared.kafka import consumer_options
from shared.outbox import OutboxGate
from shared.sealing import unseal
from shared.settings import Settings
from shared.topics import dead_letter_topic
from shared.uow import UnitOfWork

log = structlog.get_logger()

RETRY_DELAYS_S = (0.1, 0.3, 1.0, 3.0)

EventOutcome = Literal["applied", "duplicate", "dead_lettered", "retried", "erased"]
"""What became of one delivery: `retried` means it failed transiently and will be redelivered; `erased`
that its sealed fields belong to an erased case, so it was skipped."""

ObserveOutcome = Callable[[str, EventOutcome], None]
"""ObserveOutcome(topic, outcome): told of each delivery's outcome; must not do I/O."""

T = TypeVar("T")

Effect = Callable[[Any, Envelope[Any]], object]
"""Effect(batch, envelope): what one event does to a service's state, in the batch's unit of work (the
transaction that also records the event as processed). `batch` is of the service's unit of work type
(`ServiceDefinition.unit_of_work`); an effect takes that type or a base of it."""

Prepare = Callable[[Any, Sequence[Envelope[Any]]], None]
"""Prepare(batch, envelopes): called once per batch, before the effects, with the events not applied
before; reads in one query what the effects would otherwise read one event at a time."""


class PermanentEventError(DomainError):
    """An event that breaks a domain rule and can never be applied as it is (it is dead-lettered)."""

    code = "unappliable-event"


def is_retryable(exc: BaseException) -> bool:
    """Transient infrastructure failures: the message is redelivered until they pass."""
    return is_transient(exc) or isinstance(exc, ConnectionError | TimeoutError)


class DeadLetterCounter:
    """How many messages each consumer has dead-lettered (read by readiness and metrics)."""

    def __init__(self) -> None:
        self.by_topic: dict[str, int] = {}

    def add(self, topic: str) -> None:
        """Count one dead letter for `topic`."""
        self.by_topic[topic] = self.by_topic.get(topic, 0) + 1


Place = tuple[str, int, int]
"""Where a record was read: (topic, partition, offset)."""


def apply_batch(
    engine: Engine,
    inbox: type[ProcessedEventBase],
    items: Sequence[tuple[Envelope[Any], Effect]],
    *,
    consumer: str,
    unit: type[UnitOfWork] = UnitOfWork,
    prepare: Prepare | None = None,
    tracking: type[ConsumerPositionBase] | None = None,
    places: Sequence[Place | None] = (),
    replayed: frozenset[str] = frozenset(),
) -> list[bool]:
    """Apply events in order in one unit of work (of type `unit`), each at most once; True for those
    not seen before.

    With `tracking` and the records' `places`, a record below its partition's stored position is a
    redelivery and is skipped, and the positions move past the batch in the same transaction; the ids
    of the applied events are recorded for the copies that arrive at other offsets (shared/inbox.py),
    those in `replayed` (dead letters replayed) kept past the window. Two instances racing on the same
    records wait for each other on the position rows; without positions (a replay in a test) the
    second fails on the ids' primary key, and its retry finds them processed.
    """
    with transaction(engine, unit) as batch:
        at = list(places) if places else [None] * len(items)
        parts = {(place[0], place[1]) for place in at if place is not None}
        stored = positions(batch, tracking, consumer=consumer, partitions=parts) if tracking is not None else {}
        redelivered = {i for i, place in enumerate(at) if place is not None and place[2] < stored.get(place[:2], -1)}
        fresh = [envelope.id for i, (envelope, _) in enumerate(items) if i not in redelivered]
        seen = claimed(batch, inbox, consumer=consumer, event_ids=fresh)
        if prepare is not None:
            prepare(
                batch,
                [e for i, (e, _) in enumerate(items) if i not in redelivered and e.id not in seen],
            )
        applied: list[bool] = []
        for i, (envelope, effect) in enumerate(items):
            if i in redelivered or envelope.id in seen:
                applied.append(False)
                continue
            seen.add(envelope.id)
            batch.add_row(inbox, consumer=consumer, event_id=envelope.id, kept=envelope.id in replayed)
            effect(batch, envelope)
            applied.append(True)
        if tracking is not None and parts:
            reached: dict[tuple[str, int], int] = {}
            for place in at:
                if place is not None:
                    reached[place[:2]] = max(reached.get(place[:2], 0), place[2] + 1)
            advance(batch, tracking, consumer=consumer, stored=stored, reached=reached)
    return applied


async def _with_retries(work: Callable[[], T], *, consumer: str) -> T:
    """Run `work` in a worker thread, retrying transient failures (and key races) with back-off."""
    for delay in (*RETRY_DELAYS_S, None):
        try:
            return await anyio.to_thread.run_sync(work)
        except Exception as exc:
            # An IntegrityError is most often two instances claiming one event: the retry then finds
            # it processed. If it persists it is a broken rule, and the caller dead-letters it.
            if delay is None or not (is_retryable(exc) or isinstance(exc, IntegrityError)):
                raise
            log.warning("event_apply_retry", consumer=consumer, error=repr(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    """The dead letter's reason: a domain error by its code, anything else by its type."""
    if isinstance(exc, DomainError):
        return f"{exc.code}: {exc.detail}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


async def dead_letter(broker: KafkaBroker, record: "ConsumerRecord[Any, Any]", *, consumer: str, reason: str) -> None:
    """Publish `record`'s original bytes to its topic's dead-letter topic, with the reason and origin."""
    await broker.publish(
        record.value,
        topic=dead_letter_topic(record.topic),
        key=record.key,
        headers={
            "x-dlq-reason": reason,
            "x-dlq-consumer": consumer,
            "x-dlq-topic": record.topic,
            "x-dlq-partition": str(record.partition),
            "x-dlq-offset": str(record.offset),
            "x-dlq-time": datetime.now(UTC).isoformat(),
        },
    )
    log.warning(
        "event_dead_lettered",
        consumer=consumer,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
    )


# How a sealed event's JSON spells its sealed part (the relay writes it without spaces); unsealed events
# carry `"sealed":null`, so the bytes tell which records need a key before any is parsed.
_SEALED_MARK = b'"sealed":"'


async def _open_sealed(
    keys: CaseKeys, records: list["ConsumerRecord[Any, Any]"], by_topic: Mapping[str, tuple[type[EventData], Effect]]
) -> dict[int, Envelope[Any] | BaseException | None]:
    """Each sealed record opened with its case's key (one key store query for the batch): the envelope,
    None for an erased case, or the error that makes it a dead letter."""
    parsed: dict[int, dict[str, Any] | BaseException] = {}
    for record in records:
        try:
            parsed[id(record)] = json.loads(record.value)
        except ValueError as exc:
            parsed[id(record)] = InvalidEvent(f"not JSON: {exc}")
    cases = {p.get("sealedkey") for p in parsed.values() if isinstance(p, dict)}
    found = await anyio.to_thread.run_sync(
        partial(keys.keys_for, {c for c in cases if isinstance(c, str)}, create=False)
    )
    opened: dict[int, Envelope[Any] | BaseException | None] = {}
    for record in records:
        obj = parsed[id(record)]
        if isinstance(obj, BaseException):
            opened[id(record)] = obj
            continue
        case_id = obj.get("sealedkey")
        if case_id not in found:
            opened[id(record)] = MissingCaseKey(f"no key for case {case_id} in the key store")
            continue
        key = found[case_id]
        if key is None:
            opened[id(record)] = None
            continue
        try:
            opened[id(record)] = decode_object(unseal(obj, key), by_topic[record.topic][0])
        except Exception as exc:
            opened[id(record)] = exc
    return opened


def replay_for(record: "ConsumerRecord[Any, Any]") -> str | None:
    """The consumer a replayed dead letter is addressed to (`marugoto dlq replay`); None for any other record."""
    for name, value in record.headers or ():
        if name == REPLAY_FOR_HEADER:
            return bytes(value).decode(errors="replace")
    return None


class ResumeAtStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, seek each partition to the position stored with the consumer's effects, where that
    is ahead of the group's committed offset (a consumer killed between its database commit and its
    offset commit): the records it already applied are not fetched again."""

    def __init__(self, engine: Engine, tracking: type[ConsumerPositionBase], consumer: str) -> None:
        self.engine, self.tracking, self.consumer = engine, tracking, consumer
        self.subscriber: Any = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        kafka = getattr(self.subscriber, "consumer", None)
        if kafka is None or not assigned:
            return
        # Read and sought before the first await: aiokafka calls this right after it starts looking up the
        # committed offsets, and yielding would let the fetcher start from those. A stored position is
        # never behind the committed offset (every record read moves it, applied or not), so it is where
        # the partition resumes. One indexed query of a few rows holds the loop for a moment.
        stored = stored_positions(self.engine, self.tracking, consumer=self.consumer)
        for tp in assigned:
            position = stored.get((tp.topic, tp.partition))
            if position is not None:
                kafka.seek(tp, position)
                log.info("consumer_resumed_at_stored_position", topic=tp.topic, partition=tp.partition, offset=position)


def register_consumers(
    broker: KafkaBroker,
    settings: Settings,
    *,
    service: str,
    engine: Engine,
    inbox: type[ProcessedEventBase],
    handlers: Mapping[type[EventData], Effect],
    description: str,
    dead_letters: DeadLetterCounter,
    observe: ObserveOutcome | None = None,
    on_applied: Callable[[], None] | None = None,
    prepare: Prepare | None = None,
    gate: OutboxGate | None = None,
    unit: type[UnitOfWork] = UnitOfWork,
    keys: CaseKeys | None = None,
    tracking: type[ConsumerPositionBase] | None = None,
) -> None:
    """Subscribe `service`'s consumer group to the topics of `handlers`, applying their events in batches.

    One subscriber and one group per service: a group join is slow on the embedded broker, and the
    consumer's partitions of every topic then move together when instances come and go. Records of one
    partition keep their order within a batch, so the events of a case are applied in order.
    Each batch is applied in a unit of work of type `unit`, which the effects receive.
    `on_applied` is called after a transaction that applied at least one event (to wake the outbox relay);
    `prepare`, if given, once per batch transaction before the effects (see `Prepare`). `gate`, if
    given, holds each batch while the service's outbox is full. With `keys`, sealed fields are opened
    (shared/sealing.py) and an event of an erased case is skipped; without, they are read empty.
    With `tracking`, each partition's position is stored with the batch's effects and a newly assigned
    partition resumes from it (shared/inbox.py).
    """
    consumer = f"marugoto-{service}"
    group_id = settings.kafka_topic_prefix + consumer
    by_topic = {settings.kafka_topic_prefix + model.topic: (model, effect) for model, effect in handlers.items()}

    def tell(topic: str, outcome: EventOutcome) -> None:
        if observe is not None:
            observe(topic, outcome)

    async def reject(record: "ConsumerRecord[Any, Any]", exc: BaseException) -> None:
        await dead_letter(broker, record, consumer=consumer, reason=_reason(exc))
        dead_letters.add(record.topic)
        tell(record.topic, "dead_lettered")

    def apply(
        items: list[tuple[Envelope[Any], Effect]], records: list["ConsumerRecord[Any, Any]"]
    ) -> Callable[[], list[bool]]:
        def applied() -> list[bool]:
            outcomes = transact()
            for r in records:
                covered[(r.topic, r.partition)] = max(covered.get((r.topic, r.partition), 0), r.offset + 1)
            return outcomes

        transact = partial(
            apply_batch,
            engine,
            inbox,
            items,
            consumer=consumer,
            unit=unit,
            prepare=prepare,
            tracking=tracking,
            places=[(r.topic, r.partition, r.offset) for r in records],
            replayed=frozenset(e.id for (e, _), r in zip(items, records, strict=True) if replay_for(r) == consumer),
        )
        return applied

    async def split(
        items: list[tuple[Envelope[Any], Effect]], records: list["ConsumerRecord[Any, Any]"]
    ) -> list[bool | None]:
        """Apply a batch whose transaction failed: each half in a transaction of its own, the half that fails
        split again, down to the event that cannot be applied, which is dead-lettered. A batch of n with
        one such event takes about 2·log2(n) transactions, not n. The left half is settled before the
        right one, so the events of a partition keep their order."""
        middle = max(1, len(items) // 2)
        outcomes: list[bool | None] = []
        for part, part_records in ((items[:middle], records[:middle]), (items[middle:], records[middle:])):
            if not part:
                continue
            try:
                outcomes += await _with_retries(apply(part, part_records), consumer=consumer)
            except Exception as exc:
                if is_retryable(exc):
                    raise
                if len(part) == 1:
                    await reject(part_records[0], exc)
                    outcomes.append(None)
                else:
                    outcomes += await split(part, part_records)
        return outcomes

    async def handle(message: KafkaMessage) -> None:
        raw = message.raw_message
        batch = raw if isinstance(raw, tuple) else (raw,)
        await consume(batch)
        if tracking is not None:
            # Every record read moves the position, applied or not: the transactions above covered only
            # the records they applied, so one ending in a dead letter or a skipped record moves it here.
            read: dict[tuple[str, int], int] = {}
            for record in batch:
                read[(record.topic, record.partition)] = max(
                    read.get((record.topic, record.partition), 0), record.offset + 1
                )
            if read != covered:
                await _with_retries(
                    partial(advance_positions, engine, tracking, consumer=consumer, reached=read), consumer=consumer
                )

    covered: dict[tuple[str, int], int] = {}

    async def consume(batch: tuple["ConsumerRecord[Any, Any]", ...]) -> None:
        covered.clear()
        items: list[tuple[Envelope[Any], Effect]] = []
        records: list[ConsumerRecord[Any, Any]] = []
        sealed = (
            [
                r
                for r in batch
                if isinstance(r.value, bytes) and _SEALED_MARK in r.value and by_topic[r.topic][0].sealed_fields
            ]
            if keys is not None
            else []
        )
        opened = await _open_sealed(keys, sealed, by_topic) if keys is not None and sealed else {}
        for record in batch:
            model, effect = by_topic[record.topic]
            try:
                envelope = opened[id(record)] if id(record) in opened else decode(record.value, model)
                if isinstance(envelope, BaseException):
                    raise envelope
            except Exception as exc:
                await reject(record, exc)
                continue
            if envelope is None:
                tell(record.topic, "erased")
                continue
            if replay_for(record) not in (None, consumer):
                # A dead letter replayed for another consumer: this one applied (or dead-lettered) the original.
                tell(record.topic, "duplicate")
                continue
            items.append((envelope, effect))
            records.append(record)
        if not items:
            return
        if gate is not None:
            await gate.wait_for_room()
        outcomes: Sequence[bool | None]
        try:
            outcomes = await _with_retries(apply(items, records), consumer=consumer)
        except Exception as exc:
            if is_retryable(exc):
                for record in records:
                    tell(record.topic, "retried")
                raise
            log.info("event_batch_split", consumer=consumer, size=len(items), error=repr(exc))
            outcomes = await split(items, records)
        for record, outcome in zip(records, outcomes, strict=True):
            if outcome is not None:
                tell(record.topic, "applied" if outcome else "duplicate")
        if on_applied is not None and any(outcomes):
            on_applied()

    handle.__name__ = f"{service}_consumer"
    handle.__doc__ = description
    listener = ResumeAtStoredPositions(engine, tracking, consumer) if tracking is not None else None
    subscriber = broker.subscriber(
        *by_topic,
        listener=listener,
        group_id=group_id,
        batch=True,
        max_records=settings.kafka_consumer_batch_size,
        batch_timeout_ms=settings.kafka_consumer_batch_timeout_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{group_id}: {', '.join(m.event_type for m in handlers)}",
        description=description,
        **consumer_options(settings),
    )
    subscriber(handle)
    if listener is not None:
        listener.subscriber = subscriber
