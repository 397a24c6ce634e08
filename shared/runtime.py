"""The composition root every service shares: database, Kafka, outbox relay, health, metrics and AsyncAPI."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session

from shared import auth, db, problems
from shared.consumer import DeadLetterCounter, install_dead_letters
from shared.events import Envelope, EventData
from shared.inbox import ProcessedEventBase, claim
from shared.kafka import make_broker
from shared.observability import HttpMetricsMiddleware, ServiceMetrics, outbox_gauges
from shared.outbox import OutboxBase, OutboxRelay, backlog
from shared.settings import Settings

log = structlog.get_logger()


@dataclass
class Runtime:
    """What a running service holds: its settings, database engine, broker and outbox relay."""

    service: str
    settings: Settings
    engine: Engine
    broker: KafkaBroker
    dead_letters: DeadLetterCounter
    relay: OutboxRelay | None = None
    state: dict[str, Any] = field(default_factory=dict)
    metrics: ServiceMetrics | None = None

    def notify_outbox(self) -> None:
        """Tell the relay that a transaction just staged events."""
        if self.relay is not None:
            self.relay.notify()

    def apply_once(
        self,
        inbox: type[ProcessedEventBase],
        envelope: Envelope[Any],
        effect: Callable[[Session], object],
        *,
        consumer: str | None = None,
    ) -> bool:
        """Run `effect` and record the event as processed in one transaction; False if seen before."""
        with db.transaction(self.engine) as session:
            applied = claim(session, inbox, consumer=consumer or f"marugoto-{self.service}", event_id=envelope.id)
            if applied:
                effect(session)
        if self.metrics is not None:
            topic = self.settings.kafka_topic_prefix + envelope.data.topic
            self.metrics.event_consumed(topic, "applied" if applied else "duplicate")
        if not applied:
            log.info("event_already_processed", event_id=envelope.id, type=envelope.type)
            return False
        self.notify_outbox()
        return True


@dataclass
class ServiceDefinition:
    """How one service plugs into the shared runtime."""

    name: str
    title: str
    description: str
    outbox_model: type[OutboxBase] | None
    publishes: tuple[type[EventData], ...]
    # Registers the service's subscribers on the broker (called before the broker starts).
    wire: Callable[[Runtime], None]
    routers: tuple[Any, ...] = ()
    field_labels: dict[str, str] = field(default_factory=dict)
    # Long-running tasks of the service (e.g. the router's deadline timers), started with it.
    background: tuple[Callable[[Runtime], Coroutine[Any, Any, None]], ...] = ()
    # Metrics read when Prometheus scrapes (e.g. the router's open timers), registered while it runs.
    collectors: tuple[Callable[[Runtime], Collector], ...] = ()


def create_app(definition: ServiceDefinition, settings: Settings) -> FastAPI:
    """Build the FastAPI app of one service; Kafka and the relay start and stop with its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = _build_runtime(definition, settings, metrics)
        app.state.runtime = runtime
        await runtime.broker.start()
        relay_task = None
        if runtime.relay is not None and settings.relay_enabled:
            relay_task = asyncio.create_task(runtime.relay.run())
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(job(runtime)) for job in definition.background]
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
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if runtime.relay is not None and relay_task is not None:
                runtime.relay.stop()
                await relay_task
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runtime.relay.drain(), timeout=10)
            await runtime.broker.stop()
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
    auth.install(app)
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
    dead_letters = install_dead_letters(broker, consumer=f"marugoto-{definition.name}", observe=metrics.event_consumed)
    runtime = Runtime(definition.name, settings, engine, broker, dead_letters, metrics=metrics)
    definition.wire(runtime)
    if definition.outbox_model is not None:
        publishers = {
            model.topic: broker.publisher(
                settings.kafka_topic_prefix + model.topic,
                title=f"{settings.kafka_topic_prefix}{model.topic}:publish",
                description=(model.__doc__ or "").strip(),
                schema=Envelope[model],  # type: ignore[valid-type]
            )
            for model in definition.publishes
        }

        async def publish(topic: str, key: bytes, payload: bytes) -> None:
            await publishers[topic].publish(payload, key=key, headers={"content-type": "application/cloudevents+json"})
            metrics.event_published(settings.kafka_topic_prefix + topic)

        runtime.relay = OutboxRelay(
            engine,
            definition.outbox_model,
            publish,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
        )
    return runtime
