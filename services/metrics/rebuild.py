"""Rebuild: wipe the facts and recompute everything from the topics' beginning.

The embedded broker reports end offsets too low (BROKER.md), so the rebuild reads until no new record
has arrived for a quiet period instead of trusting them; that works on Apache Kafka too.
"""

import asyncio
import uuid

import structlog
from aiokafka import AIOKafkaConsumer

from services.metrics import service
from services.metrics.handlers import COUNTED
from services.metrics.models import FACT_TABLES, MetricsProcessedEvent
from shared import db
from shared.events import InvalidEvent, decode
from shared.inbox import claim
from shared.kafka import client_options
from shared.settings import Settings

log = structlog.get_logger()
CONSUMER = "marugoto-metrics"


async def rebuild(settings: Settings, *, quiet_s: float = 3.0, batch: int = 500) -> dict[str, int]:
    """Recompute the metrics facts from every counted topic; returns events applied per topic."""
    engine = db.make_engine(settings, "metrics")
    models = {settings.kafka_topic_prefix + model.topic: model for model in COUNTED}
    consumer = AIOKafkaConsumer(
        *models,
        **client_options(settings),
        group_id=f"{settings.kafka_topic_prefix}marugoto-metrics-rebuild-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    applied: dict[str, int] = dict.fromkeys(models, 0)
    try:
        with db.transaction(engine) as session:
            service.wipe(session, FACT_TABLES)
        await consumer.start()
        loop = asyncio.get_running_loop()
        last_new = loop.time()
        while loop.time() - last_new < quiet_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=batch)
            records = [record for records in batches.values() for record in records]
            if not records:
                continue
            last_new = loop.time()
            with db.transaction(engine, service.FactBatch) as facts:
                for record in records:
                    try:
                        envelope = decode(record.value, models[record.topic])
                    except InvalidEvent as error:
                        log.warning("rebuild_skipped_invalid_event", topic=record.topic, error=str(error))
                        continue
                    if claim(facts, MetricsProcessedEvent, consumer=CONSUMER, event_id=envelope.id):
                        service.count(facts, envelope)
                        applied[record.topic] += 1
    finally:
        await consumer.stop()
        engine.dispose()
    return applied
