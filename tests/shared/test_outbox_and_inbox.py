"""The transactional outbox and the idempotent consumer, on PostgreSQL and the real broker."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, event, func, text
from sqlmodel import Session, select
from structlog.testing import capture_logs

from shared import db
from shared.consultation import ConsultationSummary
from shared.consumer import DeadLetterCounter, register_consumers
from shared.events import ConsultationReceived, Envelope, decode, new_event
from shared.inbox import claim
from shared.kafka import make_broker
from shared.outbox import OutboxRelay, backlog, pending_count, stage
from shared.settings import Settings
from tests.conftest import read_events, topic_of
from tests.shared.tables import SCHEMA, Effect, TestOutbox, TestProcessedEvent


def consultation_event(case_id: str) -> Envelope[ConsultationReceived]:
    consultation = ConsultationSummary.model_validate(
        {"area": "chiiki-01", "pathway": "self", "household": [{"relation": "self", "issues": ["poverty"]}]}
    )
    data = ConsultationReceived(
        case_id=case_id,
        consultation_id=f"{case_id}-c",
        submitted_by="agency",
        received_at=datetime.now(UTC),
        consultation=consultation,
    )
    return new_event(data, source="/test", subject=case_id, municipality_code="242080")


def stage_cases(engine: Engine, case_ids: list[str]) -> list[Envelope[ConsultationReceived]]:
    events = [consultation_event(case_id) for case_id in case_ids]
    with db.transaction(engine) as session:
        for event in events:
            stage(session, TestOutbox, event)
    return events


class Producer:
    """Publishes outbox rows with a plain aiokafka producer under the test's topic prefix."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.kafka_topic_prefix
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")

    async def publish(self, topic: str, key: bytes, payload: bytes, event_id: str) -> Awaitable[object]:
        delivery: Awaitable[object] = await self.producer.send(self.prefix + topic, payload, key=key)
        return delivery


def test_rolled_back_transaction_stages_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), db.transaction(engine) as session:
        stage(session, TestOutbox, consultation_event("rolled-back"))
        raise RuntimeError("the state change failed")
    assert pending_count(engine, TestOutbox) == 0


def stage_interleaved(engine: Engine, cases: list[str], *, rounds: int) -> list[Envelope[ConsultationReceived]]:
    """`rounds` transactions, each staging one event for every case, in an order that changes per round."""
    staged: list[Envelope[ConsultationReceived]] = []
    for round_ in range(rounds):
        order = cases[round_ % len(cases) :] + cases[: round_ % len(cases)]
        staged += stage_cases(engine, order)
    return staged


def ids_by_key(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Event ids grouped by message key, each group in the order given."""
    grouped: dict[str, list[str]] = {}
    for key, event_id in pairs:
        grouped.setdefault(key, []).append(event_id)
    return grouped


async def test_relay_publishes_staged_events_in_order_keyed_by_case(engine: Engine, settings: Settings) -> None:
    cases = [f"case-{i}" for i in range(3)]
    staged = stage_interleaved(engine, cases, rounds=4)
    waiting, lag_s = backlog(engine, TestOutbox)
    assert waiting == len(staged) == 12 and lag_s >= 0.0
    producer = Producer(settings)
    await producer.producer.start()
    try:
        # Batches smaller than the backlog, so the order must also hold from one batch to the next.
        relay = OutboxRelay(engine, TestOutbox, producer.publish, batch_size=5)
        assert await relay.drain() == 12
    finally:
        await producer.producer.stop()
    assert backlog(engine, TestOutbox) == (0, 0.0)

    records = await read_events(
        str(settings.kafka_bootstrap_servers), topic_of(settings, ConsultationReceived), until=lambda r: len(r) >= 12
    )
    received = [(r.key.decode(), decode(r.value, ConsultationReceived).id) for r in records]
    assert len(received) == 12
    expected = ids_by_key([(e.subject, e.id) for e in staged])
    assert ids_by_key(received) == expected, "per case, the events arrive in the order they were staged"
    assert all(len(ids) == 4 for ids in expected.values())


class FlakyPublish:
    """A publish port that fails on the given calls (1-based) and records what it published."""

    def __init__(self, failing_calls: set[int]) -> None:
        self.failing_calls = failing_calls
        self.calls = 0
        self.published: list[tuple[str, str]] = []

    async def __call__(self, topic: str, key: bytes, payload: bytes, event_id: str) -> Awaitable[object]:
        self.calls += 1
        if self.calls in self.failing_calls:
            raise ConnectionError("broker unavailable")
        self.published.append((key.decode(), decode(payload, ConsultationReceived).id))
        acknowledged: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged


class RecordedSleep:
    """Stands in for asyncio.sleep: records each back-off and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def run_relay_until(relay: OutboxRelay, condition: Callable[[], bool]) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(condition)
    finally:
        relay.stop()
        await task


async def test_relay_backs_off_while_publishing_fails_then_publishes_everything_in_order(engine: Engine) -> None:
    staged = stage_interleaved(engine, ["a", "b"], rounds=3)
    publish = FlakyPublish(failing_calls={1, 2, 3})
    sleep = RecordedSleep()
    relay = OutboxRelay(engine, TestOutbox, publish, poll_interval_s=0.1, max_backoff_s=0.3, sleep=sleep)
    await run_relay_until(relay, lambda: pending_count(engine, TestOutbox) == 0)

    assert sleep.delays == [0.1, 0.2, 0.3], "doubling from the poll interval, capped"
    assert publish.published == [(e.subject, e.id) for e in staged], "everything, once, in staging order"


async def test_a_failure_in_mid_batch_keeps_the_order_and_republishes_nothing(engine: Engine) -> None:
    staged = stage_interleaved(engine, ["a", "b", "c"], rounds=2)
    publish = FlakyPublish(failing_calls={3, 4})
    relay = OutboxRelay(engine, TestOutbox, publish, poll_interval_s=0.1, sleep=RecordedSleep())

    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    assert pending_count(engine, TestOutbox) == 4, "the two published before the failure are deleted"

    await run_relay_until(relay, lambda: pending_count(engine, TestOutbox) == 0)
    assert publish.published == [(e.subject, e.id) for e in staged]


def test_claim_refuses_an_event_already_applied(engine: Engine) -> None:
    with db.transaction(engine) as session:
        assert claim(session, TestProcessedEvent, consumer="c", event_id="e-1")
    with db.transaction(engine) as session:
        assert not claim(session, TestProcessedEvent, consumer="c", event_id="e-1")
        assert claim(session, TestProcessedEvent, consumer="other", event_id="e-1")


def test_claim_rolled_back_with_its_effect_can_be_claimed_again(engine: Engine) -> None:
    with pytest.raises(RuntimeError), db.transaction(engine) as session:
        claim(session, TestProcessedEvent, consumer="c", event_id="e-2")
        session.add(Effect(event_id="e-2", case_id="x"))
        raise RuntimeError("effect failed")
    with db.transaction(engine) as session:
        assert claim(session, TestProcessedEvent, consumer="c", event_id="e-2")


def vacuums_of(engine: Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = :schema AND relname = 'outbox'"
        return int(conn.execute(text(query), {"schema": SCHEMA}).scalar_one())


@pytest.mark.parametrize(("vacuum_every", "vacuums"), [(10, 2), (0, 0)])
async def test_relay_deletes_what_it_published_and_vacuums_after_every_so_many(
    engine: Engine, settings: Settings, vacuum_every: int, vacuums: int
) -> None:
    """Published rows leave the table; their dead row versions are reclaimed every `vacuum_every` rows."""
    stage_cases(engine, [f"vac-{i}" for i in range(25)])
    producer = Producer(settings)
    await producer.producer.start()
    try:
        relay = OutboxRelay(engine, TestOutbox, producer.publish, batch_size=5, vacuum_every=vacuum_every)
        assert await relay.drain() == 25
    finally:
        await producer.producer.stop()
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(TestOutbox)).one() == 0, "no published row is kept"
    assert vacuums_of(engine) == vacuums, "a VACUUM after the 10th and the 20th deleted row, none after the 25th"


async def test_a_failed_vacuum_is_logged_and_publishing_goes_on(engine: Engine, settings: Settings) -> None:
    def refuse_vacuum(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("VACUUM"):
            raise RuntimeError("vacuum refused")

    event.listen(engine, "before_cursor_execute", refuse_vacuum)
    stage_cases(engine, [f"novac-{i}" for i in range(12)])
    producer = Producer(settings)
    await producer.producer.start()
    try:
        relay = OutboxRelay(engine, TestOutbox, producer.publish, batch_size=5, vacuum_every=5)
        with capture_logs() as logs:
            assert await relay.drain() == 12, "the rows are published whether or not the VACUUM runs"
    finally:
        await producer.producer.stop()
    assert pending_count(engine, TestOutbox) == 0
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["outbox_vacuum_failed"] * 2


async def test_crash_between_publish_and_delete_republishes_and_consumer_applies_once(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_ids = [f"dup-{i}" for i in range(4)]
    stage_cases(engine, case_ids)
    producer = Producer(settings)
    await producer.producer.start()
    try:
        crashing = OutboxRelay(engine, TestOutbox, producer.publish)

        def crash(_ids: list[int]) -> None:
            raise SystemExit("relay killed after publishing, before deleting")

        monkeypatch.setattr(crashing, "_delete_published", crash)
        with pytest.raises(SystemExit):
            await crashing.publish_pending()
        assert pending_count(engine, TestOutbox) == 4, "nothing was deleted, so all are still pending"
        # The restarted relay publishes the same events a second time.
        assert await OutboxRelay(engine, TestOutbox, producer.publish).drain() == 4
    finally:
        await producer.producer.stop()

    broker = make_broker(settings, client_id="test-consumer")
    applied: list[bool] = []
    register_consumers(
        broker,
        settings,
        service=SCHEMA,
        engine=engine,
        inbox=TestProcessedEvent,
        handlers={ConsultationReceived: lambda s, e: s.add(Effect(event_id=e.id, case_id=e.data.case_id))},
        description="test",
        dead_letters=DeadLetterCounter(),
        observe=lambda _topic, outcome: applied.append(outcome == "applied"),
    )
    await broker.start()
    try:
        await wait_until(lambda: len(applied) >= 8)
    finally:
        await broker.stop()
    with Session(engine) as session:
        effects = session.exec(select(Effect)).all()
    assert sorted(applied) == [False] * 4 + [True] * 4, "8 deliveries: 4 applied, 4 recognised as duplicates"
    assert sorted(e.case_id for e in effects) == case_ids, "each event applied exactly once"


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds; fail the test if it does not within the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)
