"""Throughput of the real router and metrics consumers, and of bare aiokafka baselines on the same messages.

Every figure is steady state: the clock starts when the first message is handled (the first decision row
for a service, the moment its partitions are assigned for a baseline), so the group join (about 3 s on the
embedded broker, BROKER.md) is left out of both sides alike.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI

from bench.infra import quiet_library_loggers
from shared.settings import Settings

POLL_FIRST_S = 0.02
POLL_S = 0.1
# `count(*)` reads the whole table: 56–79 ms for 1,000,000 rows on the 2-core machine of bench/README.md,
# so a poll every POLL_S took 35–45% of a core from the service measured, and more the longer it ran.
# Past COUNTED_PER_POLL_S rows the polls spread out, to at most POLL_MAX_S apart: about as many rows are
# counted per second at any size, and the clock stops at most POLL_MAX_S late (0.1% of a 1,000,000-event run).
COUNTED_PER_POLL_S = 500_000
POLL_MAX_S = 2.0


@dataclass
class Run:
    """One throughput run: `count` items handled in `seconds` of steady state (None when unfinished)."""

    count: int
    target: int
    seconds: float | None
    finished: bool
    note: str = ""
    published_events: int | None = None  # a service with an outbox: the events its relay published

    @property
    def per_second(self) -> float | None:
        if not self.finished or not self.seconds:
            return None
        return self.count / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "per_second": self.per_second}


def _consumer(bootstrap: str, *topics: str) -> AIOKafkaConsumer:
    # The consumer options every Marugoto group uses (shared.kafka.consumer_options), in a group of its own.
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


async def bare_passthrough(
    bootstrap: str,
    source: str,
    sink: str,
    n: int,
    *,
    stall_s: float,
    transform: Callable[[bytes], list[bytes]] | None = None,
) -> Run:
    """Baseline: consume `n` records of `source` and produce each to `sink` (acks=all), nothing else.

    With `transform`, the values it returns for a record are produced instead of the record (the
    reference of what decoding a record and encoding the events it causes cost on top of moving them).
    """
    consumer = _consumer(bootstrap, source)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    first = await _assigned(consumer)
    done, last_progress = 0, time.perf_counter()
    try:
        while done < n and time.perf_counter() - last_progress < stall_s:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            records = [r for rs in batches.values() for r in rs]
            if transform is None:
                futures = [await producer.send(sink, r.value, key=r.key) for r in records]
            else:
                futures = [await producer.send(sink, v, key=r.key) for r in records for v in transform(r.value)]
            if records:
                await asyncio.gather(*futures)
                done += len(records)
                last_progress = time.perf_counter()
        end = time.perf_counter()
    finally:
        await producer.stop()
        await consumer.stop()
    return _run(done, n, first, end)


async def bare_consume(
    bootstrap: str, topics: list[str], n: int, *, stall_s: float, inspect: Callable[[bytes], object] | None = None
) -> Run:
    """Baseline: consume `n` records of `topics` and decode nothing (with `inspect`: call it on each value)."""
    consumer = _consumer(bootstrap, *topics)
    await consumer.start()
    first = await _assigned(consumer)
    done, last_progress = 0, time.perf_counter()
    try:
        while done < n and time.perf_counter() - last_progress < stall_s:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            if inspect is not None:
                for rs in batches.values():
                    for r in rs:
                        inspect(r.value)
            got = sum(len(rs) for rs in batches.values())
            if got:
                done += got
                last_progress = time.perf_counter()
        end = time.perf_counter()
    finally:
        await consumer.stop()
    return _run(done, n, first, end)


async def _assigned(consumer: AIOKafkaConsumer, timeout_s: float = 30.0) -> float | None:
    """Wait for the group join (the clock of a baseline starts when it has partitions, before any fetch)."""
    deadline = time.perf_counter() + timeout_s
    while not consumer.assignment() and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    return time.perf_counter() if consumer.assignment() else None


def _run(done: int, n: int, first: float | None, end: float) -> Run:
    finished = done >= n and first is not None
    seconds = (end - first) if first is not None else None
    return Run(count=done, target=n, seconds=seconds, finished=finished, note="" if finished else "stalled")


async def _polled_counts(
    database_url: str, table: str, *, stall_s: float, first_interval_s: float = POLL_S
) -> AsyncGenerator[tuple[int, float, bool]]:
    """`SELECT count(*) FROM table` once per poll: (count, when, stalled), stalled once the count has not
    changed for `stall_s`. Polls every `first_interval_s` until the count is above 0, then every
    `poll_interval(count)`."""
    query = f"SELECT count(*) FROM {table}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        last, last_progress, seen = -1, time.perf_counter(), False
        while True:
            row = await (await conn.execute(query)).fetchone()
            count = int(row[0]) if row else 0
            now = time.perf_counter()
            if count != last:
                last, last_progress = count, now
            seen = seen or count > 0
            yield count, now, now - last_progress > stall_s
            await asyncio.sleep(poll_interval(count) if seen else first_interval_s)


def poll_interval(rows: int) -> float:
    """Seconds to the next `count(*)` of a table of `rows` rows (see COUNTED_PER_POLL_S)."""
    return min(POLL_MAX_S, max(POLL_S, rows / COUNTED_PER_POLL_S))


async def count_rows(database_url: str, table: str, n: int, *, stall_s: float, started: float | None = None) -> Run:
    """Poll `SELECT count(*) FROM table` until it reaches `n` (or stops growing for `stall_s`).

    With `started` (the moment the service's consumer got its partitions) the clock runs from then and
    every row counts, like a baseline's. Without it the clock starts at the first row seen, and the rows
    already there at that poll are not counted.
    """
    first, first_count, count = started, 0, 0
    first_interval_s = POLL_FIRST_S if started is None else POLL_S
    polls = _polled_counts(database_url, table, stall_s=stall_s, first_interval_s=first_interval_s)
    async with contextlib.aclosing(polls):  # closes the connection at the break
        async for count, now, stalled in polls:
            if first is None and count > 0:
                first, first_count = now, count
            if count >= n or stalled:
                break
    end = time.perf_counter()
    if first is None:
        return Run(count=count, target=n, seconds=None, finished=False, note="no rows")
    finished = count >= n
    handled = count - first_count
    return Run(
        count=handled,
        target=n,
        seconds=end - first,
        finished=finished and handled > 0,
        note="" if finished else f"stalled at {count}/{n}",
    )


async def _service_assigned(app: FastAPI, timeout_s: float = 30.0) -> float | None:
    """Wait until the service's consumer group has given it partitions (the clock of a service starts then)."""
    subscribers = app.state.runtime.broker.subscribers
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        consumers = [s.consumer for s in subscribers if getattr(s, "consumer", None) is not None]
        if consumers and all(c.assignment() for c in consumers):
            return time.perf_counter()
        await asyncio.sleep(0.005)
    return None


async def run_service(
    app: FastAPI, settings: Settings, table: str, n: int, *, stall_s: float, outbox: str | None = None
) -> tuple[Run, Run | None]:
    """Run a service app in this process with its lifespan until `table` holds `n` rows, and then, with
    `outbox`, until that table is empty: the service's events are all published too.

    Services apply events in batches and commit a batch at once, so the clock cannot start at the first
    row: it starts when the consumer has its partitions, as a baseline's does (the group join is left
    out of both). The second run counts the same `n` items over the time to the empty outbox.
    """
    published: Run | None = None
    async with app.router.lifespan_context(app):
        quiet_library_loggers()
        started = await _service_assigned(app)
        run = await count_rows(str(settings.database_url), table, n, stall_s=stall_s, started=started)
        if outbox is not None and run.finished and started is not None:
            published = await _until_empty(str(settings.database_url), outbox, run, started, stall_s=stall_s)
        dead = dict(app.state.runtime.dead_letters.by_topic)
        if published is not None and app.state.runtime.relay is not None:
            published.published_events = app.state.runtime.relay.published_total
    if dead:
        run.note = (run.note + f"; dead-lettered {dead}").lstrip("; ")
    return run, published


async def _until_empty(database_url: str, table: str, run: Run, started: float, *, stall_s: float) -> Run:
    """Poll until `table` (an outbox) is empty; the items of `run` over the time from `started` to then."""
    left = 0
    polls = _polled_counts(database_url, table, stall_s=stall_s)
    async with contextlib.aclosing(polls):
        async for left, _, stalled in polls:
            if left == 0 or stalled:
                break
    end = time.perf_counter()
    note = "" if left == 0 else f"outbox stalled at {left} events"
    return Run(count=run.count, target=run.target, seconds=end - started, finished=left == 0, note=note)
