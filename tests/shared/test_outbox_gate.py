"""A full outbox holds the service's consumer (`shared.outbox.OutboxGate`), so a flood waits in Kafka."""

import asyncio

import pytest
from sqlalchemy import Engine, delete, func
from sqlmodel import Session, col, select

from shared import db
from shared.consumer import DeadLetterCounter
from shared.events import ConsultationReceived, Envelope, encode
from shared.kafka import make_broker
from shared.outbox import OutboxGate, waiting_at_least
from shared.settings import Settings
from tests.conftest import topic_of
from tests.shared.tables import Effect, TestOutbox
from tests.shared.test_consumer import produce, subscribe
from tests.shared.test_outbox_and_inbox import consultation_event, wait_until


@pytest.fixture
def engine(either_engine: Engine) -> Engine:
    return either_engine


def fill(engine: Engine, n: int) -> None:
    with db.transaction(engine) as session:
        for i in range(n):
            session.add_row(TestOutbox, event_id=f"e{i}", topic="t", key="k", payload="{}")


def publish_oldest(engine: Engine, n: int) -> None:
    """What the relay does with published rows: delete the `n` oldest."""
    with db.transaction(engine) as session:
        oldest = session.exec(select(TestOutbox.id).order_by(col(TestOutbox.id)).limit(n)).all()
        session.exec(delete(TestOutbox).where(col(TestOutbox.id).in_(oldest)))


def test_waiting_at_least_counts_the_rows_left_to_publish(engine: Engine) -> None:
    assert not waiting_at_least(engine, TestOutbox, 1)
    fill(engine, 10)
    assert waiting_at_least(engine, TestOutbox, 10)
    assert not waiting_at_least(engine, TestOutbox, 11)
    publish_oldest(engine, 3)
    assert waiting_at_least(engine, TestOutbox, 7)
    assert not waiting_at_least(engine, TestOutbox, 8)
    publish_oldest(engine, 7)
    assert not waiting_at_least(engine, TestOutbox, 1)


async def test_the_gate_holds_while_the_outbox_is_full_and_opens_when_the_relay_makes_room(engine: Engine) -> None:
    fill(engine, 5)
    gate = OutboxGate(engine, TestOutbox, 5, poll_s=0.02)
    waiting = asyncio.create_task(gate.wait_for_room())
    await wait_until(lambda: gate.holds == 1, timeout_s=5)
    await asyncio.sleep(0.2)  # ten more looks at a full outbox
    assert not waiting.done()
    publish_oldest(engine, 1)
    await asyncio.wait_for(waiting, timeout=5)
    assert gate.holds == 1
    await asyncio.wait_for(gate.wait_for_room(), timeout=5)  # room already: no hold
    assert gate.holds == 1


async def test_a_hold_ends_after_its_longest_wait_or_when_the_service_stops(engine: Engine) -> None:
    fill(engine, 3)
    bounded = OutboxGate(engine, TestOutbox, 3, poll_s=0.02, max_hold_s=0.3)
    await asyncio.wait_for(bounded.wait_for_room(), timeout=5)  # the relay is stuck: the batch goes ahead
    assert bounded.holds == 1
    stopping = OutboxGate(engine, TestOutbox, 3, poll_s=0.02)
    waiting = asyncio.create_task(stopping.wait_for_room())
    await wait_until(lambda: stopping.holds == 1, timeout_s=5)
    stopping.release()
    await asyncio.wait_for(waiting, timeout=5)
    await asyncio.wait_for(stopping.wait_for_room(), timeout=1)  # released for good


async def test_a_consumer_applies_nothing_while_its_outbox_is_full(postgres_engine: Engine, settings: Settings) -> None:
    engine = postgres_engine
    fill(engine, 4)
    gate = OutboxGate(engine, TestOutbox, 4, poll_s=0.05)
    broker = make_broker(settings, client_id="test-gate")

    def apply(session: Session, envelope: Envelope[ConsultationReceived]) -> None:
        session.add(Effect(event_id=envelope.id, case_id=envelope.data.case_id))

    subscribe(broker, settings, engine, apply, DeadLetterCounter(), gate)
    await produce(settings, topic_of(settings, ConsultationReceived), [(b"held", encode(consultation_event("held")))])
    await broker.start()
    try:
        await wait_until(lambda: gate.holds == 1, timeout_s=60)  # the batch came, and waits
        assert effects(engine) == 0
        publish_oldest(engine, 1)
        await wait_until(lambda: effects(engine) == 1, timeout_s=30)
    finally:
        await broker.stop()


def effects(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Effect)).one()
