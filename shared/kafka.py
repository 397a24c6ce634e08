"""Kafka clients and topics, configured the same way for the embedded broker and Apache Kafka."""

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import Settings
from shared.topics import ALL_TOPICS, retention_ms

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


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


def _no_key_password() -> str:
    raise ValueError("MARUGOTO_KAFKA_SSL_KEY_FILE is encrypted: set MARUGOTO_KAFKA_SSL_KEY_PASSWORD")


def tls_context(settings: Settings) -> ssl.SSLContext:
    """TLS that verifies the broker (the configured CA, else the system's) and its host name."""
    key_password = settings.kafka_ssl_key_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_ca_file,
        certfile=settings.kafka_ssl_cert_file,
        keyfile=settings.kafka_ssl_key_file,
        # Never None: OpenSSL would then prompt on the terminal for the password of an encrypted key.
        password=key_password.get_secret_value() if key_password is not None else _no_key_password,
    )
    return context


def broker_security(settings: Settings) -> BaseSecurity | None:
    """FastStream's security object for the configured protocol; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(settings) if protocol in {"SSL", "SASL_SSL"} else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    assert settings.kafka_sasl_username and settings.kafka_sasl_password is not None  # checked by Settings
    return _SASL[settings.kafka_sasl_mechanism](
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options of a plain aiokafka client (admin, consumer, producer): address and security.

    The security options are those FastStream gives its own clients, so every client of a process
    connects the same way.
    """
    return {"bootstrap_servers": bootstrap_servers(settings), **parse_security(broker_security(settings))}


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
        security=broker_security(settings),
    )


def topic_configs(topic: str, *, min_insync_replicas: int | None = None) -> dict[str, str]:
    """The topic-level configuration a Marugoto topic (without prefix) is created with on Apache Kafka."""
    configs = {"cleanup.policy": "delete", "retention.ms": str(retention_ms(topic))}
    if min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(min_insync_replicas)
    return configs


async def ensure_topics(
    bootstrap: str,
    *,
    partitions: int,
    replication_factor: int = 1,
    prefix: str = "",
    timeout_s: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    connection: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create every Marugoto topic (under `prefix`) that does not exist yet; returns the ones it created.

    `configs` maps a topic (without prefix) to its topic-level configuration; `connection` holds the
    admin client's security options (`client_options`). Existing topics are left as they are.
    """
    options = {**(connection or {}), "bootstrap_servers": bootstrap}
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **options)
    await asyncio.wait_for(admin.start(), timeout=timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in ALL_TOPICS if prefix + t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        prefix + t,
                        num_partitions=partitions,
                        replication_factor=replication_factor,
                        topic_configs=dict((configs or {}).get(t, {})),
                    )
                    for t in missing
                ]
            )
        return [prefix + t for t in missing]
    finally:
        await admin.close()


async def ensure_configured_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics on the configured Kafka, with the configured partitions, replication
    factor, retention and security; returns the ones it created."""
    return await ensure_topics(
        bootstrap_servers(settings),
        partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_replication_factor,
        prefix=settings.kafka_topic_prefix,
        timeout_s=timeout_s,
        configs={t: topic_configs(t, min_insync_replicas=settings.kafka_min_insync_replicas) for t in ALL_TOPICS},
        connection=client_options(settings),
    )
