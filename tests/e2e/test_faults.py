"""Faults through separate service processes on the real broker and PostgreSQL.

- kill -9 of the router, then the conference service, then the metrics service, each in the middle of a
  stream of 800 consultations (with poison messages mixed in): afterwards every consultation has
  exactly one decision, one set of referrals and the right meetings, every poison message is a dead
  letter with its reason, and the indicators equal those of the same stream without faults;
- two router instances in one consumer group share the partitions, and killing one hands its
  partitions to the other with nothing lost or applied twice;
- SIGTERM stops taking work, finishes the batch in hand and flushes the outbox before the process exits.
"""

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from services.cli import upgrade_databases
from services.metrics.handlers import COUNTED
from shared import topics
from shared.auth import Scope, TokenIssuer
from shared.consultation import ConsultationSummary
from shared.events import ConsultationReceived, RoutingDecided, encode, new_event
from shared.settings import Settings
from shared.topics import dead_letter_topic
from tests.conftest import (
    log_staged_events,
    make_settings,
    new_database,
    new_topic_prefix,
    read_all,
    service_env,
    topic_of,
)
from tests.e2e.processes import ServiceProcess, running

pytestmark = pytest.mark.e2e

MUNICIPALITY = "242080"  # the demo municipality of shared/demo_directory.yaml
STREAM = 800
# The pace of the kill -9 test's stream: twenty seconds, the kills four seconds apart, each well after the
# previous one's restarted consumer has waited out its killed predecessor's session (2 s: tests/e2e/processes.py).
FEED_PER_SECOND = 40.0
# Households that take different routes through the demo directory: tier 1, tier 2 (case meetings)
# and tier 3 (prefecture support), one or several partner agencies.
HOUSEHOLDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chiiki-01", ("long_term_care",)),
    ("chiiki-02", ("poverty",)),
    ("chiiki-03", ("legal", "poverty")),
    ("chiiki-04", ("hikikomori", "employment")),
    ("chiiki-05", ("childcare", "housing")),
    ("chiiki-06", ("mental_health", "poverty", "housing")),
    ("chiiki-07", ("domestic_violence", "childcare")),
    ("chiiki-08", ("released_prisoner",)),
)


def consultation(i: int) -> tuple[str, bytes]:
    """The i-th consultation of the stream, as intake would publish it: (case id, wire bytes)."""
    area, issues = HOUSEHOLDS[i % len(HOUSEHOLDS)]
    case_id = str(uuid.uuid4())
    summary = ConsultationSummary.model_validate(
        {
            "area": area,
            "pathway": ("self", "family_or_community", "specialist_agency", "government")[i % 4],
            "urgency": ("routine", "soon", "urgent")[i % 3],
            "household": [{"relation": "self", "age_band": "40-64", "issues": list(issues)}],
        }
    )
    data = ConsultationReceived(
        case_id=case_id,
        consultation_id=f"{case_id}-0",
        submitted_by="nabari-shakyo",
        received_at=datetime.now(UTC),
        consultation=summary,
    )
    return case_id, encode(new_event(data, source="/test/faults", subject=case_id, municipality_code=MUNICIPALITY))


def poison(i: int) -> tuple[str, bytes, str]:
    """A message that can never be applied: (key, bytes, what the dead letter's reason must say)."""
    key = f"poison-{i}"
    kind = i % 4
    if kind == 0:
        return key, b"\x00\xff not json", "InvalidEvent"
    _, raw = consultation(i)
    event = json.loads(raw)
    if kind == 1:
        event["type"] = RoutingDecided.event_type
        return key, json.dumps(event).encode(), "expected type"
    if kind == 2:
        del event["data"]["consultation"]["household"]
        return key, json.dumps(event).encode(), "household"
    event["data"]["consultation"]["area"] = "no-such-area"
    return key, json.dumps(event).encode(), "no-such-area"


@dataclass
class Stream:
    """What a run was fed: the consultations' case ids and the poison messages with their reasons."""

    case_ids: list[str]
    poison: dict[bytes, str]


async def feed(
    settings: Settings, n: int, *, poison_every: int = 100, per_second: float | None = None, into: Stream | None = None
) -> Stream:
    """Produce `n` consultations to consultation.received, a poison message after every `poison_every`;
    all at once, or `per_second` at a steady pace. `into` (if given) is filled as they are sent."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    stream = Stream([], {}) if into is None else into
    topic = topic_of(settings, ConsultationReceived)
    started = time.monotonic()
    try:
        sent = []
        for i in range(n):
            if per_second is not None:
                await asyncio.sleep(max(0.0, started + i / per_second - time.monotonic()))
            case_id, raw = consultation(i)
            stream.case_ids.append(case_id)
            sent.append(await producer.send(topic, raw, key=case_id.encode()))
            if i % poison_every == poison_every // 2:
                key, bad, reason = poison(len(stream.poison))
                stream.poison[key.encode()] = reason
                sent.append(await producer.send(topic, bad, key=key.encode()))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return stream


class Database:
    """Direct reads of the services' tables, as an operator would check them."""

    def __init__(self, url: str) -> None:
        self.url = url

    def scalar(self, query: str) -> Any:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(query).fetchone()
            return row[0] if row else None

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query).fetchall()

    def count(self, table: str, where: str = "TRUE") -> int:
        try:
            return int(self.scalar(f"SELECT count(*) FROM {table} WHERE {where}"))
        except psycopg.errors.UndefinedTable:
            return 0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180.0, every_s: float = 0.05) -> None:
    """Poll `condition` until it holds; fail with `what` when it does not within the timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every_s)


CONFERENCE_FOLLOWS = (topics.ROUTING_DECIDED, topics.REFERRAL_REQUESTED, topics.REFERRAL_STATUS_CHANGED)
METRICS_COUNTS = tuple(model.topic for model in COUNTED if model is not ConsultationReceived)


def _in(topic_names: tuple[str, ...]) -> str:
    return "topic IN (" + ", ".join(f"'{t}'" for t in topic_names) + ")"


def unapplied(db: Database, service: str, fed: int) -> int:
    """How many of the events published so far `service` (conference or metrics) has still to apply.

    The `fed` consultations go straight to Kafka; everything else those two follow was staged in an
    outbox (published or not: `log_staged_events` keeps the count, as the relay deletes what it publishes).
    """
    if service == "conference":
        # It follows the consultations too (what the 推進会議 agenda counts of them).
        published = fed + db.count("router.staged_event", _in(CONFERENCE_FOLLOWS))
    else:
        staged = (db.count(f"{name}.staged_event", _in(METRICS_COUNTS)) for name in ("router", "conference"))
        published = fed + sum(staged)
    return published - db.count(f"{service}.processed_event")


def wait_settled(db: Database, services: dict[str, ServiceProcess], stream: Stream, timeout_s: float = 300.0) -> None:
    """Wait until every consultation is decided, every outbox is empty, conference has applied every router
    event it follows, and metrics has stopped moving."""
    wait_for(lambda: db.count("router.decision") >= len(stream.case_ids), "every decision", timeout_s)
    outboxes = [f"{name}.outbox" for name in ("router", "conference") if name in services]
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backlog = sum(db.count(outbox) for outbox in outboxes)
        if "conference" in services:
            # A restarted conference may still be catching up after the router and metrics are done.
            backlog += max(0, unapplied(db, "conference", len(stream.case_ids)))
        if "metrics" in services:
            # So may a restarted metrics service (a poison message it can apply makes this an underestimate).
            backlog += max(0, unapplied(db, "metrics", len(stream.case_ids)))
        applied = db.count("metrics.processed_event") if "metrics" in services else 0
        if backlog or applied != last:
            last, stable_since = applied, time.monotonic()
        elif time.monotonic() - stable_since > 2:
            return
        time.sleep(0.25)
    pytest.fail("the services never settled")


def kill_mid_stream(service: ServiceProcess, progress: Callable[[], int], at: int, before: Callable[[], bool]) -> None:
    """kill -9 `service` once `progress` reaches `at`, while `before` still holds; then start it again
    (without waiting for it to be ready: its consumer group may wait out the killed member's session)."""
    wait_for(lambda: progress() >= at, f"the stream to reach {at} before killing {service.name}")
    assert before(), f"{service.name} was to be killed in the middle of the stream, but the stream was over"
    service.kill()
    service.start()


def assert_exactly_once(db: Database, stream: Stream, *, meetings: bool = True) -> None:
    """One decision per consultation, one referral per engaged agency, one meeting per tier-2/3 case."""
    decisions = db.rows(
        "SELECT case_id, count(*), max(tier), max(json_array_length(engaged::json)) "
        "FROM router.decision GROUP BY case_id"
    )
    assert {d[0] for d in decisions} == set(stream.case_ids), "every consultation decided, and nothing else"
    assert all(d[1] == 1 for d in decisions), "no consultation decided twice"
    referrals = dict(db.rows("SELECT case_id, count(*) FROM router.referral GROUP BY case_id"))
    assert all(referrals.get(case_id) == engaged for case_id, _, _, engaged in decisions), (
        "one referral per engaged agency, none twice"
    )
    if not meetings:
        return
    scheduled = dict(
        db.rows("SELECT case_id, count(*) FROM conference.meeting WHERE kind = 'case_meeting' GROUP BY case_id")
    )
    needing = {case_id for case_id, _, tier, _ in decisions if tier >= 2}
    assert needing, "the stream has tier-2/3 cases"
    assert set(scheduled) == needing, "a case meeting for exactly the tier-2 and tier-3 cases"
    assert all(n == 1 for n in scheduled.values()), "no case meeting scheduled twice"


async def assert_dead_letters(settings: Settings, stream: Stream) -> None:
    """Every poison message is a dead letter of the router, with the reason it could not be applied."""
    topic = dead_letter_topic(topic_of(settings, ConsultationReceived))
    records = await read_all(str(settings.kafka_bootstrap_servers), [topic], idle_s=3, timeout_s=60)
    by_router = {r.key: dict(r.headers) for r in records if dict(r.headers)["x-dlq-consumer"] == b"marugoto-router"}
    assert set(by_router) == set(stream.poison), "each poison message dead-lettered by the router"
    for key, reason in stream.poison.items():
        assert reason.encode() in by_router[key]["x-dlq-reason"], (key, by_router[key]["x-dlq-reason"])


def indicators(metrics: ServiceProcess, operator: dict[str, str]) -> list[dict[str, Any]]:
    """The municipality's indicators for this fiscal year, as the operator reads them."""
    response = httpx.get(f"{metrics.url}/v1/indicators?municipality={MUNICIPALITY}", headers=operator, timeout=30)
    assert response.status_code == 200, response.text
    return sorted(response.json()["indicators"], key=lambda i: str(i["id"]))


@contextmanager
def stack(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    secrets_env: dict[str, str],
    work: Path,
    names: tuple[str, ...] = ("router", "conference", "metrics"),
) -> Iterator[tuple[Settings, Database, dict[str, ServiceProcess]]]:
    """The services as separate processes on a database and topic namespace of their own."""
    work.mkdir(parents=True)
    with new_database(postgres_admin_url) as url:
        prefix = asyncio.run(new_topic_prefix(kafka_bootstrap))
        settings = make_settings(kafka_bootstrap, url, prefix, secrets_env, work)
        upgrade_databases(settings, list(names))
        log_staged_events(url, [name for name in names if name in ("intake", "router", "conference")])
        with running(names, service_env(settings), work) as services:
            yield settings, Database(url), services


@pytest.fixture
def operator(issuer: TokenIssuer) -> dict[str, str]:
    token, _ = issuer.issue("operator", (Scope.operator,), municipalities=[MUNICIPALITY])
    return {"Authorization": f"Bearer {token}"}


def test_kill_9_mid_stream_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    secrets_env: dict[str, str],
    tmp_path: Path,
    operator: dict[str, str],
) -> None:
    with stack(kafka_bootstrap, postgres_admin_url, secrets_env, tmp_path / "faults") as (settings, db, services):
        # The stream flows at a steady pace (twenty seconds), and the three are killed in turn
        # when a fifth, two fifths and three fifths of it are fed: each while consultations are still
        # coming. (Fed all at once, the stream could be over before the last kill, as a restarted
        # consumer may wait out its killed predecessor's session before it gets partitions.)
        stream = Stream([], {})
        with ThreadPoolExecutor(1) as pool:
            feeding = pool.submit(asyncio.run, feed(settings, STREAM, per_second=FEED_PER_SECOND, into=stream))
            fed, flowing = (lambda: len(stream.case_ids)), (lambda: not feeding.done())
            for n, name in enumerate(("router", "conference", "metrics"), start=1):
                kill_mid_stream(services[name], fed, n * STREAM // 5, flowing)
            feeding.result()
        for service in services.values():
            service.wait_ready()
        wait_settled(db, services, stream)
        assert_exactly_once(db, stream)
        asyncio.run(assert_dead_letters(settings, stream))
        with_faults = indicators(services["metrics"], operator)

    with stack(kafka_bootstrap, postgres_admin_url, secrets_env, tmp_path / "baseline") as (settings, db, services):
        baseline_stream = asyncio.run(feed(settings, STREAM))
        wait_settled(db, services, baseline_stream)
        assert_exactly_once(db, baseline_stream)
        without_faults = indicators(services["metrics"], operator)

    assert next(i for i in with_faults if i["id"] == "M8-全機関")["value"] >= STREAM
    assert with_faults == without_faults, "the indicators of the run with three crashes equal those without"


def consumed(service: ServiceProcess, outcome: str) -> float:
    """How many deliveries of consultation.received this process has seen with `outcome` (its /metrics)."""
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "marugoto_events_consumed_total"
                and sample.labels.get("outcome") == outcome
                and sample.labels.get("topic", "").endswith(ConsultationReceived.topic)
            ):
                total += sample.value
    return total


def test_two_routers_share_the_partitions_and_one_takes_over_when_the_other_is_killed(
    settings: Settings, tmp_path: Path
) -> None:
    upgrade_databases(settings, ["router"])
    env = service_env(settings)
    first = ServiceProcess("router", env, (tmp_path / "a"))
    second = ServiceProcess("router", env, (tmp_path / "b"))
    for service in (first, second):
        service.log_path.parent.mkdir()
    db = Database(str(settings.database_url))
    try:
        first.start()
        second.start()
        first.wait_ready()
        second.wait_ready()
        warmup = asyncio.run(feed(settings, 200, poison_every=1000))
        wait_for(lambda: consumed(first, "applied") > 0 and consumed(second, "applied") > 0, "both routers to work")
        rest = asyncio.run(feed(settings, 2000, poison_every=1000))
        stream = Stream(warmup.case_ids + rest.case_ids, {**warmup.poison, **rest.poison})
        assert db.count("router.decision") < len(stream.case_ids), "killed in the middle of the stream"
        first.kill()
        survivor_before = consumed(second, "applied")
        wait_for(lambda: db.count("router.decision") >= len(stream.case_ids), "every decision after the kill")
        assert consumed(second, "applied") > survivor_before, "the survivor took over the killed router's partitions"
        wait_for(lambda: db.count("router.outbox") == 0, "the outbox to be published")
    finally:
        first.stop()
        second.stop()
    assert_exactly_once(db, stream, meetings=False)
    decided = asyncio.run(
        read_all(str(settings.kafka_bootstrap_servers), [topic_of(settings, RoutingDecided)], idle_s=3, timeout_s=60)
    )
    assert {r.key.decode() for r in decided} == set(stream.case_ids), "every decision was published"


def test_sigterm_finishes_the_batch_in_hand_and_flushes_the_outbox(settings: Settings, tmp_path: Path) -> None:
    upgrade_databases(settings, ["router"])
    router = ServiceProcess("router", service_env(settings), tmp_path)
    db = Database(str(settings.database_url))
    try:
        router.start().wait_ready()
        stream = asyncio.run(feed(settings, 1500, poison_every=500))
        wait_for(lambda: db.count("router.decision") >= 100, "the router to be busy")
        assert router.process is not None
        router.process.terminate()
        # uvicorn finishes the shutdown, then re-raises the signal so the exit status tells how it ended.
        assert router.process.wait(timeout=30) in (0, -signal.SIGTERM), router.log_tail()
        assert '"service_stopped"' in router.log_tail(), "the lifespan's shutdown ran to its end"
        decided = db.count("router.decision")
        assert decided < len(stream.case_ids), "stopped in the middle of the stream"
        assert db.count("router.outbox") == 0, "every staged event published before exit"
        router.start().wait_ready()
        wait_for(lambda: db.count("router.decision") >= len(stream.case_ids), "the rest after the restart")
        assert consumed(router, "duplicate") == 0, "the stopped router committed the offsets of all it applied"
    finally:
        router.stop()
    assert_exactly_once(db, stream, meetings=False)
