"""Kafka consumers: idempotent application of events, bounded retries, and a dead-letter topic.

A message that can never be applied (not JSON, not the expected event, breaks a domain rule) is
published to `<topic>.dlq` with the reason and its original bytes, and the stream moves on. A
transient failure (database or broker unavailable) is retried with bounded back-off inside the
handler and then re-raised, so the message is redelivered from its offset and never dead-lettered.
"""

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import structlog
from faststream import AckPolicy
from faststream._internal.middlewares import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from sqlalchemy.exc import IntegrityError

from shared.db import is_transient
from shared.events import Envelope, EventData, decode
from shared.kafka import consumer_options
from shared.settings import Settings
from shared.topics import dead_letter_topic

log = structlog.get_logger()

RETRY_DELAYS_S = (0.1, 0.3, 1.0, 3.0)

EventOutcome = Literal["applied", "duplicate", "dead_lettered", "retried"]
"""What became of one delivery: `retried` means it failed transiently and will be redelivered."""

ObserveOutcome = Callable[[str, EventOutcome], None]
"""ObserveOutcome(topic, outcome): told of each delivery's outcome; must not do I/O."""


class PermanentEventError(Exception):
    """An event that breaks a domain rule and can never be applied as it is (it is dead-lettered)."""


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


def install_dead_letters(
    broker: KafkaBroker, *, consumer: str, observe: ObserveOutcome | None = None
) -> DeadLetterCounter:
    """Make every subscriber of `broker` dead-letter the messages that fail for a permanent reason.

    `observe` is told of the deliveries that end here: dead-lettered, or re-raised to be redelivered.
    """
    counter = DeadLetterCounter()
    broker.add_middleware(_dead_letter_middleware(broker, consumer=consumer, counter=counter, observe=observe))
    return counter


def _dead_letter_middleware(
    broker: KafkaBroker, *, consumer: str, counter: DeadLetterCounter, observe: ObserveOutcome | None
) -> type[BaseMiddleware[Any, Any]]:

    class DeadLetterMiddleware(BaseMiddleware[Any, Any]):
        async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
            try:
                return await call_next(msg)
            except Exception as exc:
                if is_retryable(exc):
                    if observe is not None:
                        observe(msg.raw_message.topic, "retried")
                    raise
                await _dead_letter(broker, msg, consumer=consumer, reason=_reason(exc))
                counter.add(msg.raw_message.topic)
                if observe is not None:
                    observe(msg.raw_message.topic, "dead_lettered")
                return None

    return DeadLetterMiddleware


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


async def _dead_letter(broker: KafkaBroker, msg: StreamMessage[Any], *, consumer: str, reason: str) -> None:
    record = msg.raw_message
    await broker.publish(
        msg.body,
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


Apply = Callable[[Envelope[Any]], None]


def register_consumers(
    broker: KafkaBroker,
    settings: Settings,
    *,
    service: str,
    handlers: Mapping[type[EventData], Apply],
    description: str,
) -> None:
    """Subscribe `service`'s consumer group to the topics of `handlers`; each `apply` runs in a worker thread.

    One subscriber and one group per service: a group join is slow on the embedded broker, and the
    consumer's partitions of every topic then move together when instances come and go. Each `apply`
    must be idempotent through `shared.inbox.claim` in the same transaction as its effect; permanent
    failures are dead-lettered by the broker's middleware (`install_dead_letters`).
    """
    consumer = f"marugoto-{service}"
    group_id = settings.kafka_topic_prefix + consumer
    by_topic = {settings.kafka_topic_prefix + model.topic: (model, apply) for model, apply in handlers.items()}

    async def handle(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple), "a single-message subscriber receives one record"
        model, apply = by_topic[record.topic]
        envelope = decode(message.body, model)
        for delay in (*RETRY_DELAYS_S, None):
            try:
                await anyio.to_thread.run_sync(apply, envelope)
                return
            except Exception as exc:
                # An IntegrityError is most often two instances claiming one event: the retry then
                # finds it processed. If it persists it is a broken rule, and is dead-lettered.
                if delay is None or not (is_retryable(exc) or isinstance(exc, IntegrityError)):
                    raise
                log.warning("event_apply_retry", consumer=consumer, event_id=envelope.id, error=repr(exc))
                await asyncio.sleep(delay)

    handle.__name__ = f"{service}_consumer"
    handle.__doc__ = description
    broker.subscriber(
        *by_topic,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{group_id}: {', '.join(m.event_type for m in handlers)}",
        description=description,
        **consumer_options(settings),
    )(handle)
