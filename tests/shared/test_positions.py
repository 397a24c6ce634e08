"""Exactly-once by position (shared/inbox.py): a redelivered record is recognised by its offset however late,
a copy at another offset by its id within the window, and the bookkeeping stays bounded."""

from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from shared import db
from shared.consumer import DeadLetterCounter, apply_batch, register_consumers
from shared.events import ConsultationReceived, Envelope, encode
from shared.inbox import prune, stored_positions
from shared.kafka import make_broker
from shared.settings import Settings
from shared.uow import UnitOfWork
from tests.conftest import topic_of
from tests.shared.tables import SCHEMA, Effect, TestConsumerPosition, TestProcessedEvent
from tests.shared.test_outbox_and_inbox import consultation_event, wait_until

CONSUMER = "marugoto-test"
TOPIC = "t.marugoto.consultation.received"


def record_effect(batch: UnitOfWork, envelope: Envelope[Any]) -> None:
    batch.add(Effect(event_id=envelope.id, case_id=envelope.data.case_id))


def apply(engine: Engine, events: list[Envelope[Any]], offsets: list[int], **options: Any) -> list[bool]:
    return apply_batch(
        engine,
        TestProcessedEvent,
        [(e, record_effect) for e in events],
        consumer=CONSUMER,
        tracking=TestConsumerPosition,
        places=[(TOPIC, 0, offset) for offset in offsets],
        **options,
    )


def subscribe(broker: Any, settings: Settings, engine: Engine, outcomes: list[str]) -> None:
    """The test schema's consumer, with positions, telling `outcomes` what became of each delivery."""
    register_consumers(
        broker,
        settings,
        service=SCHEMA,
        engine=engine,
        inbox=TestProcessedEvent,
        tracking=TestConsumerPosition,
        handlers={ConsultationReceived: record_effect},
        description="test",
        dead_letters=DeadLetterCounter(),
        observe=lambda _topic, outcome: outcomes.append(outcome),
    )


def effects(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Effect.event_id).order_by(col(Effect.id))).all())


def rows(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_redelivery_is_skipped_by_its_position_even_once_its_ids_are_pruned(engine: Engine) -> None:
    events = [consultation_event(f"case-{i}") for i in range(5)]
    assert apply(engine, events, [10, 11, 12, 13, 14]) == [True] * 5
    assert stored_positions(engine, TestConsumerPosition, consumer=CONSUMER) == {(TOPIC, 0): 15}

    # The window passed (an instance down for longer): the ids are gone, the position is not.
    assert prune(engine, TestProcessedEvent, window_s=60, now=datetime.now(UTC) + timedelta(minutes=2)) == 5
    assert rows(engine, TestProcessedEvent) == 0
    new = consultation_event("case-new")
    assert apply(engine, [*events[3:], new], [13, 14, 15]) == [False, False, True]
    assert effects(engine) == [e.id for e in events] + [new.id]
    assert stored_positions(engine, TestConsumerPosition, consumer=CONSUMER) == {(TOPIC, 0): 16}


def test_a_copy_at_another_offset_is_recognised_by_its_id_within_the_window(engine: Engine) -> None:
    event = consultation_event("case-copy")
    assert apply(engine, [event], [3]) == [True]
    # A relay that died after the broker's acknowledgement publishes it again, further on.
    assert apply(engine, [event], [9]) == [False]
    assert effects(engine) == [event.id]
    assert stored_positions(engine, TestConsumerPosition, consumer=CONSUMER) == {(TOPIC, 0): 10}


def test_pruning_keeps_replayed_dead_letters_and_the_rows_stay_bounded(engine: Engine) -> None:
    replayed = consultation_event("case-replayed")
    apply(engine, [replayed], [0], replayed=frozenset({replayed.id}))
    for start in range(1, 400, 50):
        apply(
            engine, [consultation_event(f"case-{n}") for n in range(start, start + 50)], list(range(start, start + 50))
        )
    assert rows(engine, TestProcessedEvent) == 401
    prune(engine, TestProcessedEvent, window_s=60, now=datetime.now(UTC) + timedelta(minutes=2))
    # One position row for the partition, and the one replayed id: not one row per event of the log.
    assert (rows(engine, TestConsumerPosition), rows(engine, TestProcessedEvent)) == (1, 1)
    assert apply(engine, [replayed], [900]) == [False], "replayed again, however late: applied once"


async def test_a_newly_assigned_partition_resumes_at_its_stored_position(engine: Engine, settings: Settings) -> None:
    """The consumer was killed after its transaction committed and before the group's offsets did: the
    records it applied are not fetched again (seek on assignment), so none is even counted a duplicate."""
    topic = topic_of(settings, ConsultationReceived)
    before = [consultation_event(f"applied-{i}") for i in range(6)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, encode(e), key=b"k", partition=0) for e in before]
        # Their effects and the position past them committed; the group has no committed offset at all.
        with db.transaction(engine) as session:
            for event in before:
                session.add(TestProcessedEvent(consumer=f"marugoto-{SCHEMA}", event_id=event.id))
            session.add(
                TestConsumerPosition(
                    consumer=f"marugoto-{SCHEMA}", topic=topic, partition=0, next_offset=sent[-1].offset + 1
                )
            )
        outcomes: list[str] = []
        broker = make_broker(settings, client_id="test-resume")
        subscribe(broker, settings, engine, outcomes)
        await broker.start()
        try:
            after = consultation_event("after")
            await producer.send_and_wait(topic, encode(after), key=b"k", partition=0)
            await wait_until(lambda: "applied" in outcomes)
        finally:
            await broker.stop()
    finally:
        await producer.stop()
    assert outcomes == ["applied"], "the applied records were not fetched again"
    assert effects(engine) == [after.id]


async def test_records_applied_by_no_transaction_move_the_position_too(engine: Engine, settings: Settings) -> None:
    """A batch that ends in a dead letter: its position passes it, so a partition resuming there never
    reads it again (and never dead-letters it twice)."""
    topic = topic_of(settings, ConsultationReceived)
    good = consultation_event("good")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode(good), key=b"k", partition=1)
        last = await producer.send_and_wait(topic, b"not an event", key=b"k", partition=1)
    finally:
        await producer.stop()
    outcomes: list[str] = []
    broker = make_broker(settings, client_id="test-advance")
    subscribe(broker, settings, engine, outcomes)
    await broker.start()
    try:
        await wait_until(lambda: sorted(outcomes) == ["applied", "dead_lettered"])
        await wait_until(
            lambda: (
                stored_positions(engine, TestConsumerPosition, consumer=f"marugoto-{SCHEMA}").get((topic, 1))
                == last.offset + 1
            )
        )
    finally:
        await broker.stop()
