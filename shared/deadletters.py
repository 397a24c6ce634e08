"""Operator tools for dead letters: list them, read one, and replay it once its cause is fixed.

A replayed message goes back to its original topic with its original key and bytes; the consumers'
idempotency (the event id) makes replaying the same dead letter twice harmless.
"""

import asyncio
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import EVENT_TOPICS, dead_letter_topic


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def reference(self) -> str:
        """How an operator names it: `<dlq topic>:<partition>:<offset>`."""
        return f"{self.topic}:{self.partition}:{self.offset}"


def dlq_topics(settings: Settings) -> list[str]:
    """Every dead-letter topic of this deployment."""
    return [settings.kafka_topic_prefix + dead_letter_topic(topic) for topic in EVENT_TOPICS]


async def read_dead_letters(settings: Settings, *, quiet_s: float = 2.0, timeout_s: float = 60.0) -> list[DeadLetter]:
    """Every dead letter, read from the beginning until the topics are quiet (end offsets are unreliable)."""
    consumer = AIOKafkaConsumer(
        *dlq_topics(settings),
        **client_options(settings),
        group_id=f"marugoto-dlq-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    letters: list[DeadLetter] = []
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        started = last_new = loop.time()
        while loop.time() - last_new < quiet_s and loop.time() - started < timeout_s:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    last_new = loop.time()
                    letters.append(
                        DeadLetter(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            key=record.key,
                            value=record.value,
                            headers={k: v.decode(errors="replace") for k, v in record.headers},
                        )
                    )
    finally:
        await consumer.stop()
    return sorted(letters, key=lambda letter: (letter.topic, letter.partition, letter.offset))


# Set on a replayed dead letter: the consumer that dead-lettered it, the only one to apply it again
# (the others applied the original, or dead-lettered it too and get a replay of their own).
REPLAY_FOR_HEADER = "x-replay-for"


def _replay_headers(letter: "DeadLetter") -> list[tuple[str, bytes]]:
    headers = [("x-replayed-from", letter.reference.encode())]
    if consumer := letter.headers.get("x-dlq-consumer"):
        headers.append((REPLAY_FOR_HEADER, consumer.encode()))
    return headers


async def replay(settings: Settings, letters: list[DeadLetter]) -> int:
    """Publish dead letters back to their original topics; returns how many were sent."""
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(
                letter.headers["x-dlq-topic"],
                letter.value,
                key=letter.key,
                headers=_replay_headers(letter),
            )
    finally:
        await producer.stop()
    return len(letters)
