"""The composition root every service shares: database, Kafka, outbox relay, health, metrics and AsyncAPI."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import structlog
from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from shared import auth, db, problems
from shared.bearer import install_auth
from shared.case_keys import CaseKeys
from shared.consumer import DeadLetterCounter, Effect, Prepare, apply_batch, register_consumers
from shared.events import Envelope, EventData, envelope_of
from shared.inbox import ConsumerPositionBase, ProcessedEventBase, prune
from shared.kafka import make_broker
from shared.observability import HttpMetricsMiddleware, ServiceMetrics, outbox_gauges
from shared.outbox import OutboxBase, OutboxGate, OutboxRelay, Pending, backlog
from shared.sealing import seal_batch
from shared.settings import Settings
from shared.uow import UnitOfWork

log = structlog.get_logger()

C = TypeVar("C")


@dataclass
class Runtime:
    """What a running service holds: its settings, database engine, broker and outbox relay."""

    service: str
    settings: Settings
    engine: Engine
    broker: KafkaBroker
    dead_letters: DeadLetterCounter
    relay: OutboxRelay | None = None
    outbox_gate: OutboxGate | None = None
    # The service's own context (directories, vault, issuer…), built once by its `wire` in the lifespan.
    context: object = None
    metrics: ServiceMetrics | None = None
    # The unit of work its consumer batches and endpoints run in (`ServiceDefinition.unit_of_work`).
    unit_of_work: type[UnitOfWork] = UnitOfWork
    # The per-case keys its relay seals with and (`ServiceDefinition.opens_sealed`) its consumer opens with.
    case_keys: CaseKeys | None = None
    opens_sealed: bool = False
    # The consumer's table of applied event ids (set by `consume`), pruned past the dedup window.
    inbox: type[ProcessedEventBase] | None = None

    def context_as(self, kind: type[C]) -> C:
        """The service's context, as the type its `wire` built."""
        if not isinstance(self.context, kind):
            raise TypeError(
                f"the {self.service} service's context is {type(self.context).__name__}, not {kind.__name__}"
            )
        return self.context

    def notify_outbox(self) -> None:
        """Tell the relay that a transaction just staged events."""
        if self.relay is not None:
            self.relay.notify()

    def consume(
        self,
        inbox: type[ProcessedEventBase],
        handlers: Mapping[type[EventData], Effect],
        *,
        tracking: type[ConsumerPositionBase],
        description: str,
        prepare: Prepare | None = None,
        stages_events: bool = True,
    ) -> None:
        """Subscribe this service's consumer group: each event's effect is applied once, in batches.

        A batch is applied in the service's unit of work (`ServiceDefinition.unit_of_work`): the effects
        and `prepare` take that type, or a base of it. If the effects stage events (`stages_events`), a batch waits
        while the outbox is full (`Settings.outbox_backlog_limit`); consuming then only makes the
        outbox longer. Its positions are kept in `tracking` and the ids it applied lately in `inbox`
        (shared/inbox.py), pruned past `Settings.dedup_window_s`.
        """
        register_consumers(
            self.broker,
            self.settings,
            service=self.service,
            engine=self.engine,
            inbox=inbox,
            unit=self.unit_of_work,
            handlers=handlers,
            description=description,
            dead_letters=self.dead_letters,
            observe=self.metrics.event_consumed if self.metrics is not None else None,
            on_applied=self.notify_outbox,
            prepare=prepare,
            gate=self.outbox_gate if stages_events else None,
            keys=self.case_keys if self.opens_sealed else None,
            tracking=tracking,
        )
        self.inbox = inbox

    def apply_once(self, inbox: type[ProcessedEventBase], envelope: Envelope[Any], effect: Effect) -> bool:
        """Apply one event outside a consumer (e.g. a replay in a test); False if it was applied before."""
        [applied] = apply_batch(
            self.engine, inbox, [(envelope, effect)], consumer=f"marugoto-{self.service}", unit=self.unit_of_work
        )
        if applied:
            self.notify_outbox()
        return applied


@dataclass
class ServiceDefinition:
    """How one service plugs into the shared runtime."""

    name: str
    title: str
    description: str
    outbox_model: type[OutboxBase] | None
    publishes: tuple[type[EventData], ...]
    # Builds the service's context and registers its subscribers on the broker (before the broker
    # starts); what it returns is `Runtime.context`.
    wire: Callable[[Runtime], object]
    routers: tuple[Any, ...] = ()
    field_labels: dict[str, str] = field(default_factory=dict)
    # The unit of work its consumer batches and endpoints run in: a subclass holds what one batch
    # keeps besides its rows (e.g. the router's decisions of the batch); effects are typed to it.
    unit_of_work: type[UnitOfWork] = UnitOfWork
    # Long-running tasks of the service (e.g. the router's deadline timers), started with it.
    background: tuple[Callable[[Runtime], Coroutine[Any, Any, None]], ...] = ()
    # Metrics read when Prometheus scrapes (e.g. the router's open timers), registered while it runs.
    collectors: tuple[Callable[[Runtime], Collector], ...] = ()
    # Whether its consumer reads the sealed fields of events (shared/sealing.py) and so needs the case keys;
    # a service that counts only what stays in clear (metrics) reads them empty and holds no key.
    opens_sealed: bool = False


def create_app(definition: ServiceDefinition, settings: Settings) -> FastAPI:
    """Build the FastAPI app of one service; Kafka and the relay start and stop with its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_collector(settings)
        runtime = _build_runtime(definition, settings, metrics)
        app.state.runtime = runtime
        await runtime.broker.start()
        relay_task = None
        if runtime.relay is not None and settings.relay_enabled:
            relay_task = asyncio.create_task(runtime.relay.run())
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(job(runtime)) for job in definition.background]
        if runtime.inbox is not None:
            tasks.append(asyncio.create_task(_prune_applied_ids(runtime)))
        collectors = [make(runtime) for make in definition.collectors]
        if definition.outbox_model is not None:
            collectors.append(outbox_gauges(definition.name, runtime.engine, definition.outbox_model))
        for collector in collectors:
            metrics.registry.register(collector)
        log.info("service_started", service=definition.name)
        try:
            yield
        finally:
            log.info("service_stopping", service=definition.name)
            # Stop taking work first: a batch in hand finishes and commits its offsets (within the
            # broker's graceful timeout), so the outbox drained below holds everything it caused.
            if runtime.outbox_gate is not None:
                runtime.outbox_gate.release()  # a batch held for room goes ahead now
            for subscriber in runtime.broker.subscribers:
                with contextlib.suppress(Exception):
                    await subscriber.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if runtime.relay is not None and relay_task is not None:
                runtime.relay.stop()
                await relay_task
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runtime.relay.drain(), timeout=10)
                await anyio.to_thread.run_sync(runtime.relay.resign)
            await runtime.broker.stop()
            log.info("service_stopped", service=definition.name)
            for collector in collectors:
                metrics.registry.unregister(collector)
            runtime.engine.dispose()

    app = FastAPI(title=definition.title, description=definition.description, version="0.1.0", lifespan=lifespan)
    app.state.verifier = load_verifier(settings)
    metrics = ServiceMetrics(definition.name)
    metrics.expect_published(settings.kafka_topic_prefix + model.topic for model in definition.publishes)
    app.state.metrics = metrics
    problems.install(app, definition.field_labels)
    problems.install_input_guard(app)
    # Added last, so it is the outermost middleware and times and counts every answer, refusals included.
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    install_auth(app)
    for router in definition.routers:
        app.include_router(router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok", "service": definition.name}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "Not ready: the database or the broker is unavailable"}},
    )
    async def readyz(response: Response) -> dict[str, Any]:
        """Readiness: the database answers and the Kafka broker is reachable."""
        runtime: Runtime = app.state.runtime
        database_ok = await anyio.to_thread.run_sync(db.is_ready, runtime.engine)
        broker_ok = bool(await runtime.broker.ping(timeout=2.0))
        checks: dict[str, Any] = {"database": database_ok, "broker": broker_ok}
        if runtime.relay is not None and definition.outbox_model is not None and database_ok:
            waiting, lag_s = await anyio.to_thread.run_sync(backlog, runtime.engine, definition.outbox_model)
            checks["outbox_backlog"] = waiting
            checks["outbox_lag_s"] = round(lag_s, 3)
            checks["outbox_published"] = runtime.relay.published_total
        checks["dead_letters"] = dict(runtime.dead_letters.by_topic)
        ready = database_ok and broker_ok
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not_ready", "service": definition.name, "checks": checks}

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests, events consumed and published, consumer lag, outbox backlog, timers."""
        runtime: Runtime = app.state.runtime
        await metrics.consumer_lag.refresh(runtime.broker)
        # Some collectors query the database: off the event loop.
        body = await anyio.to_thread.run_sync(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/asyncapi.json", tags=["operations"])
    async def asyncapi() -> Response:
        """The AsyncAPI 3.0 document of what this service publishes and consumes."""
        runtime: Runtime = app.state.runtime
        spec = AsyncAPI(runtime.broker, title=definition.title, version="0.1.0", description=definition.description)
        return Response(spec.to_specification().to_json(), media_type="application/json")

    return app


def tune_collector(settings: Settings) -> None:
    """Collect the youngest generation less often (process-wide): see `Settings.gc_young_threshold`."""
    if settings.gc_young_threshold:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(settings.gc_young_threshold, middle, oldest)


def load_verifier(settings: Settings) -> auth.TokenVerifier:
    """The token verifier for the configured public keys; refuses to start without one."""
    if not settings.auth_public_key_files:
        raise auth.AuthConfigError(
            "no token verifying key: set MARUGOTO_AUTH_PUBLIC_KEY_FILES (marugoto up generates a development pair)"
        )
    return auth.load_verifier([path.read_text() for path in settings.auth_public_key_files])


def _build_runtime(definition: ServiceDefinition, settings: Settings, metrics: ServiceMetrics) -> Runtime:
    engine = db.make_engine(settings, definition.name)
    broker = make_broker(settings, client_id=f"marugoto-{definition.name}", description=definition.description)
    runtime = Runtime(
        definition.name,
        settings,
        engine,
        broker,
        DeadLetterCounter(),
        metrics=metrics,
        unit_of_work=definition.unit_of_work,
        opens_sealed=definition.opens_sealed,
    )
    if definition.outbox_model is not None or definition.opens_sealed:
        runtime.case_keys = CaseKeys.from_settings(settings)
    if definition.outbox_model is not None and settings.outbox_backlog_limit:
        runtime.outbox_gate = OutboxGate(engine, definition.outbox_model, settings.outbox_backlog_limit)
    runtime.context = definition.wire(runtime)
    if definition.outbox_model is not None:
        publishers = {
            model.topic: broker.publisher(
                settings.kafka_topic_prefix + model.topic,
                title=f"{settings.kafka_topic_prefix}{model.topic}:publish",
                description=(model.__doc__ or "").strip(),
                schema=envelope_of(model),
            )
            for model in definition.publishes
        }

        async def publish(topic: str, key: bytes, payload: bytes, event_id: str) -> Awaitable[object]:
            # The event's own id as the correlation id: FastStream would make a uuid4 per message, and a
            # trace of the message then names the event.
            sent = await publishers[topic].publish(
                payload,
                key=key,
                headers={"content-type": "application/cloudevents+json"},
                correlation_id=event_id,
                no_confirm=True,
            )

            def count(ack: "asyncio.Future[object]") -> None:
                if not ack.cancelled() and ack.exception() is None:
                    metrics.event_published(settings.kafka_topic_prefix + topic)

            sent.add_done_callback(count)
            return sent

        runtime.relay = OutboxRelay(
            engine,
            definition.outbox_model,
            publish,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            vacuum_every=settings.outbox_vacuum_every,
            seal=_sealer(runtime.case_keys) if runtime.case_keys is not None else None,
        )
    return runtime


async def _prune_applied_ids(runtime: Runtime) -> None:
    """Forget the ids of events applied before the dedup window, every `dedup_prune_interval_s`."""
    settings, inbox = runtime.settings, runtime.inbox
    assert inbox is not None
    while True:
        try:
            pruned = await anyio.to_thread.run_sync(
                lambda: prune(runtime.engine, inbox, window_s=settings.dedup_window_s)
            )
            if pruned:
                log.info("applied_ids_pruned", service=runtime.service, rows=pruned)
        except Exception as exc:  # pruning again later is harmless
            log.warning("applied_ids_prune_failed", service=runtime.service, error=repr(exc))
        await anyio.sleep(settings.dedup_prune_interval_s)


def _sealer(keys: CaseKeys) -> Callable[[list[Pending]], list[Pending]]:
    """The relay's sealing of a batch: each case's key made on first use, read once per batch."""

    def seal(rows: list[Pending]) -> list[Pending]:
        payloads = seal_batch(
            [row.payload for row in rows],
            [row.topic for row in rows],
            lambda cases: keys.keys_for(cases, create=True),
        )
        return [
            row if payload is row.payload else row._replace(payload=payload)
            for row, payload in zip(rows, payloads, strict=True)
        ]

    return seal
