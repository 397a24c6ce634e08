"""Consumers on the real broker: poison messages are dead-lettered, transient failures are retried."""

import json

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from shared.consumer import DeadLetterCounter, PermanentEventError, register_consumers
from shared.consumer import Effect as Effect_
from shared.events import ConsultationReceived, Envelope, RoutingDecided, encode
from shared.kafka import make_broker
from shared.outbox import OutboxGate
from shared.settings import Settings
from shared.topics import dead_letter_topic
from tests.conftest import read_events, topic_of
from tests.shared.tables import SCHEMA, Effect, TestProcessedEvent
from tests.shared.test_outbox_and_inbox import consultation_event, wait_until


async def produce(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_stream_flows_on(
    engine: Engine, settings: Settings
) -> None:
    topic = topic_of(settings, ConsultationReceived)
    valid_before, valid_after = consultation_event("ok-1"), consultation_event("ok-2")
    breaks_rule = consultation_event("breaks-rule")
    wrong_type = json.loads(encode(consultation_event("x")))
    wrong_type["type"] = RoutingDecided.event_type
    poison = {
        b"not-json": b"\x00\xffnot json at all",
        b"wrong-type": json.dumps(wrong_type).encode(),
        b"missing-data": json.dumps({"specversion": "1.0", "id": "1"}).encode(),
        b"breaks-rule": encode(breaks_rule),
    }
    await produce(
        settings,
        topic,
        [(b"ok-1", encode(valid_before)), *poison.items(), (b"ok-2", encode(valid_after))],
    )

    broker = make_broker(settings, client_id="test-dlq")
    dead_letters = DeadLetterCounter()

    def apply(session: Session, envelope: Envelope[ConsultationReceived]) -> None:
        if envelope.data.case_id == "breaks-rule":
            raise PermanentEventError("area outside the municipality")
        session.add(Effect(event_id=envelope.id, case_id=envelope.data.case_id))

    subscribe(broker, settings, engine, apply, dead_letters)
    await broker.start()
    try:
        await wait_until(lambda: dead_letters.by_topic.get(topic, 0) >= 4 and _effects(engine) >= 2)
    finally:
        await broker.stop()

    assert _effects(engine) == 2, "both valid events around the poison were applied"
    records = await read_events(
        str(settings.kafka_bootstrap_servers), dead_letter_topic(topic), until=lambda r: len(r) >= 4
    )
    by_key = {r.key: r for r in records}
    assert set(by_key) == set(poison)
    for key, original in poison.items():
        headers = dict(by_key[key].headers)
        assert by_key[key].value == original, "the original bytes are kept"
        assert headers["x-dlq-topic"].decode() == topic
        assert headers["x-dlq-reason"]
    assert b"InvalidEvent" in dict(by_key[b"not-json"].headers)["x-dlq-reason"]
    assert b"area outside the municipality" in dict(by_key[b"breaks-rule"].headers)["x-dlq-reason"]


async def test_a_failed_batch_is_split_until_only_its_bad_events_are_dead_lettered_in_order(
    engine: Engine, settings: Settings
) -> None:
    """One partition's batch with two events that break a rule: the batch is split in halves until each
    bad event stands alone; every other event is applied once, in the partition's order."""
    topic = topic_of(settings, ConsultationReceived)
    names = [f"bad-{n}" if n in (37, 71) else f"ok-{n}" for n in range(100)]
    await produce(settings, topic, [(b"one-household", encode(consultation_event(name))) for name in names])
    broker = make_broker(settings, client_id="test-split")
    dead_letters = DeadLetterCounter()

    def apply(session: Session, envelope: Envelope[ConsultationReceived]) -> None:
        if envelope.data.case_id.startswith("bad-"):
            raise PermanentEventError("area outside the municipality")
        session.add(Effect(event_id=envelope.id, case_id=envelope.data.case_id))

    subscribe(broker, settings, engine, apply, dead_letters)
    await broker.start()
    try:
        await wait_until(lambda: dead_letters.by_topic.get(topic, 0) >= 2 and _effects(engine) >= 98)
    finally:
        await broker.stop()
    with Session(engine) as session:
        applied = [e.case_id for e in session.exec(select(Effect).order_by(Effect.id))]  # type: ignore[arg-type]
    assert applied == [name for name in names if name.startswith("ok-")], "each once, in order"
    records = await read_events(
        str(settings.kafka_bootstrap_servers), dead_letter_topic(topic), until=lambda r: len(r) >= 2
    )
    assert sorted(json.loads(r.value)["data"]["case_id"] for r in records) == ["bad-37", "bad-71"]


async def test_transient_failures_are_retried_not_dead_lettered(engine: Engine, settings: Settings) -> None:
    topic = topic_of(settings, ConsultationReceived)
    await produce(settings, topic, [(b"flaky", encode(consultation_event("flaky")))])
    broker = make_broker(settings, client_id="test-retry")
    dead_letters = DeadLetterCounter()
    attempts: list[int] = []

    def apply(session: Session, envelope: Envelope[ConsultationReceived]) -> None:
        attempts.append(1)
        if len(attempts) <= 6:  # more failures than the in-handler retries: the message is redelivered
            raise OperationalError("SELECT 1", {}, Exception("database is restarting"))
        session.add(Effect(event_id=envelope.id, case_id=envelope.data.case_id))

    subscribe(broker, settings, engine, apply, dead_letters)
    await broker.start()
    try:
        await wait_until(lambda: _effects(engine) >= 1, timeout_s=60)
    finally:
        await broker.stop()
    assert len(attempts) == 7
    assert dead_letters.by_topic == {}


def subscribe(
    broker: KafkaBroker,
    settings: Settings,
    engine: Engine,
    apply: Effect_,
    dead_letters: DeadLetterCounter,
    gate: OutboxGate | None = None,
) -> None:
    register_consumers(
        broker,
        settings,
        service=SCHEMA,
        engine=engine,
        inbox=TestProcessedEvent,
        handlers={ConsultationReceived: apply},
        description="test",
        dead_letters=dead_letters,
        gate=gate,
    )


def _effects(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Effect)).all())
