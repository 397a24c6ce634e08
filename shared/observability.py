"""Prometheus metrics of a service: HTTP traffic, events consumed and published, backlogs and lag.

Each app has a registry of its own (several apps share one process in tests). Counters are kept in
memory on the hot path; whatever needs the database or the Kafka client is read when Prometheus
scrapes `/metrics`. Labels hold route templates, topics, partitions and outcomes only: never a case
id, an agency or personal data.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.consumer import EventOutcome
from shared.outbox import OutboxBase, backlog

log = structlog.get_logger()

UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ConsumerLag:
    """Messages behind the log end per topic-partition, from the Kafka client's last fetch (best effort).

    Both figures are what the client already holds (the highwater of its last fetch response and its
    own position), so a scrape sends no request. The embedded Tansu broker under-reports end offsets
    (BROKER.md), so there the lag reads too low; on Apache Kafka it is the usual highwater − position.
    """

    def __init__(self, service: str) -> None:
        self._service = service
        self._lag: dict[tuple[str, int], int] = {}

    async def refresh(self, broker: KafkaBroker) -> None:
        """Take a new reading from the consumers of `broker`'s subscribers."""
        lag: dict[tuple[str, int], int] = {}
        for consumer in _kafka_consumers(broker):
            highwaters: dict[Any, int] = {}
            with contextlib.suppress(Exception):  # the assignment may change under us during a rebalance
                for partition in consumer.assignment():
                    if (highwater := consumer.highwater(partition)) is not None:
                        highwaters[partition] = highwater
            for partition, highwater in highwaters.items():
                with contextlib.suppress(Exception):
                    position = await asyncio.wait_for(consumer.position(partition), timeout=0.2)
                    lag[(partition.topic, partition.partition)] = max(0, highwater - position)
        self._lag = lag

    def describe(self) -> Iterable[Metric]:
        """The metric this collector yields (so the registry never calls `collect` to learn it)."""
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        """The last reading."""
        family = self._family()
        for (topic, partition), lag in sorted(self._lag.items()):
            family.add_metric([self._service, topic, str(partition)], lag)
        return [family]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "marugoto_consumer_lag",
            "Messages not yet consumed per topic-partition (highwater - position; too low on the embedded broker)",
            labels=["service", "topic", "partition"],
        )


def _kafka_consumers(broker: KafkaBroker) -> list[Any]:
    consumers: list[Any] = []
    for subscriber in broker.subscribers:
        consumers.extend(getattr(subscriber, "consumer_subgroup", None) or [getattr(subscriber, "consumer", None)])
    return [consumer for consumer in consumers if consumer is not None]


class ScrapeGauges:
    """Gauges read (typically from the database) when Prometheus scrapes, so nothing maintains them meanwhile."""

    def __init__(self, service: str, docs: Mapping[str, str], read: Callable[[], Mapping[str, float]]) -> None:
        self._service = service
        self._docs = dict(docs)
        self._read = read

    def describe(self) -> Iterable[Metric]:
        """The metrics this collector yields (so the registry never reads them to learn their names)."""
        return [GaugeMetricFamily(name, doc, labels=["service"]) for name, doc in self._docs.items()]

    def collect(self) -> Iterable[Metric]:
        """Read the values now; a failed read leaves the gauges out of this scrape."""
        try:
            values = self._read()
        except Exception as exc:
            log.warning("metrics_read_failed", gauges=list(self._docs), error=repr(exc))
            return []
        families = []
        for name, doc in self._docs.items():
            if name in values:
                family = GaugeMetricFamily(name, doc, labels=["service"])
                family.add_metric([self._service], values[name])
                families.append(family)
        return families


def outbox_gauges(service: str, engine: Engine, model: type[OutboxBase]) -> ScrapeGauges:
    """The outbox backlog and the age of its oldest event, as `/readyz` reports them."""

    def read() -> dict[str, float]:
        waiting, lag_s = backlog(engine, model)
        return {"marugoto_outbox_backlog": waiting, "marugoto_outbox_lag_seconds": lag_s}

    docs = {
        "marugoto_outbox_backlog": "Events staged in the outbox and not yet published",
        "marugoto_outbox_lag_seconds": "Seconds the oldest unpublished outbox event has waited",
    }
    return ScrapeGauges(service, docs, read)


class ServiceMetrics:
    """The metrics of one service, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "marugoto_http_requests",
            "HTTP requests served, by route template and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "marugoto_http_request_duration_seconds",
            "Time to serve an HTTP request, by route template",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.events_consumed = Counter(
            "marugoto_events_consumed",
            "Deliveries of consumed events by outcome (applied, duplicate, dead_lettered, retried)",
            ["service", "topic", "outcome"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "marugoto_events_published",
            "Events the outbox relay published to Kafka",
            ["service", "topic"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "marugoto_dead_letters",
            "Consumed events sent to the dead-letter topic, by original topic",
            ["service", "topic"],
            registry=self.registry,
        )
        self.consumer_lag = ConsumerLag(service)
        self.registry.register(self.consumer_lag)

    def request_served(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count one HTTP request; `route` is the route template, never the raw path."""
        method = method if method in _METHODS else "other"
        self.http_requests.labels(self.service, method, route, str(status)).inc()
        self.http_duration.labels(self.service, method, route).observe(duration_s)

    def event_consumed(self, topic: str, outcome: EventOutcome) -> None:
        """Count one delivery of an event of `topic` and what became of it."""
        self.events_consumed.labels(self.service, topic, outcome).inc()
        if outcome == "dead_lettered":
            self.dead_letters.labels(self.service, topic).inc()

    def event_published(self, topic: str) -> None:
        """Count one event the broker acknowledged."""
        self.events_published.labels(self.service, topic).inc()

    def expect_published(self, topics: Iterable[str]) -> None:
        """Show the published counters of `topics` at zero before the first event, so rates start at once."""
        for topic in topics:
            self.events_published.labels(self.service, topic)


class HttpMetricsMiddleware:
    """ASGI middleware counting requests and their latency by route template, with no I/O."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response, the server answers 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records the matched route in the scope; its template bounds the label values.
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.request_served(scope["method"], route, status, time.perf_counter() - started)
