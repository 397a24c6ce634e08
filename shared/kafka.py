"""Kafka clients and topics, configured the same way for the embedded broker and Apache Kafka."""

import asyncio
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker

from shared.settings import Settings
from shared.topics import ALL_TOPICS


class BrokerNotConfigured(RuntimeError):
    """No Kafka bootstrap address was given to a process that needs one."""


def bootstrap_servers(settings: Settings) -> str:
    """The configured bootstrap address, or a clear error telling how to get one."""
    if not settings.kafka_bootstrap_servers:
        raise BrokerNotConfigured(
            "KAFKA_BOOTSTRAP_SERVERS is not set: run `marugoto up`, or start `marugoto broker` and "
            "export the address it prints"
        )
    return settings.kafka_bootstrap_servers


def consumer_options(settings: Settings) -> dict[str, Any]:
    """Subscriber options every consumer group uses (BROKER.md: earliest offsets, short joins)."""
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
    }


def make_broker(settings: Settings, *, client_id: str, description: str = "") -> KafkaBroker:
    """A FastStream Kafka broker client; idempotence is a setting (off on the embedded broker)."""
    return KafkaBroker(
        bootstrap_servers(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        # Topics are created explicitly with their partition counts, never by a metadata request.
        allow_auto_create_topics=False,
        # On stop, a batch being applied is finished and its offsets committed before the consumer leaves.
        graceful_timeout=settings.kafka_graceful_timeout_s,
        # Through the root handler, so its lines are JSON like every other log line.
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        description=description,
    )


async def ensure_topics(
    bootstrap: str, *, partitions: int, replication_factor: int = 1, prefix: str = "", timeout_s: float = 30.0
) -> list[str]:
    """Create every Marugoto topic (under `prefix`) that does not exist yet; returns the ones it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), timeout=timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [prefix + t for t in ALL_TOPICS if prefix + t not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in missing]
            )
        return missing
    finally:
        await admin.close()
