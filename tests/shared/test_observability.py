"""Every service serves Prometheus metrics at /metrics, in-process against the real broker and PostgreSQL.

Consumer lag is never asserted on: the embedded broker under-reports end offsets (BROKER.md).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from services.cli import upgrade_databases
from services.conference import app as conference_app
from services.intake import app as intake_app
from services.metrics import app as metrics_app
from services.router import app as router_app
from services.router.models import Timer
from shared import db
from shared.auth import Scope
from shared.events import ConsultationReceived
from shared.settings import Settings
from tests.conftest import topic_of
from tests.e2e.test_spine import CONSULTATION_8050

PARTNER = "nabari-shakyo"
APPS = {"intake": intake_app, "router": router_app, "conference": conference_app, "metrics": metrics_app}


@asynccontextmanager
async def running(app: FastAPI, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` with its lifespan started (broker, relay, consumers and background tasks)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
            yield client


async def scrape(client: httpx.AsyncClient) -> dict[str, Metric]:
    """GET /metrics and parse it as Prometheus text (the parser raises on anything invalid)."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


async def scrape_until(
    client: httpx.AsyncClient, condition: Callable[[dict[str, Metric]], bool], timeout_s: float = 30.0
) -> dict[str, Metric]:
    """Scrape until `condition` holds on the parsed metrics; returns them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition(families := await scrape(client)):
        assert asyncio.get_running_loop().time() < deadline, "the metrics never reached the expected values"
        await asyncio.sleep(0.2)
    return families


def samples(family: Metric, suffix: str = "", **labels: str) -> list[Any]:
    """The samples of `family` named with `suffix` whose labels include `labels`."""
    return [s for s in family.samples if s.name == family.name + suffix and labels.items() <= s.labels.items()]


async def test_intake_counts_requests_by_route_template_and_the_events_it_publishes(
    settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    upgrade_databases(settings, ["intake"])
    partner = bearer(PARTNER, Scope.submit, Scope.read_own)
    async with running(intake_app.create(settings), "intake") as intake:
        assert (await intake.get("/v1/cases")).status_code == 401
        accepted = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=partner)
        assert accepted.status_code == 202, accepted.text
        case_id = accepted.json()["case_id"]
        assert (await intake.get(f"/v1/cases/{case_id}", headers=partner)).status_code == 200

        topic = topic_of(settings, ConsultationReceived)
        families = await scrape_until(
            intake, lambda f: any(s.value >= 1 for s in samples(f["marugoto_events_published"], "_total", topic=topic))
        )
        text = (await intake.get("/metrics")).text

    assert samples(families["marugoto_events_published"], "_total", service="intake", topic=topic)[0].value == 1
    requests = families["marugoto_http_requests"]
    assert samples(requests, "_total", service="intake", method="GET", route="/v1/cases", status="401")
    assert samples(requests, "_total", method="POST", route="/v1/consultations", status="202")
    assert samples(requests, "_total", method="GET", route="/v1/cases/{case_id}", status="200")
    assert samples(families["marugoto_http_request_duration_seconds"], "_count", route="/v1/consultations")
    assert samples(families["marugoto_outbox_backlog"], service="intake")
    assert samples(families["marugoto_outbox_lag_seconds"], service="intake")
    assert "marugoto_consumer_lag" in families
    assert case_id not in text and PARTNER not in text, "no case id or agency in any label"


async def test_router_counts_events_applied_and_dead_lettered(
    settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    upgrade_databases(settings, ["intake", "router"])
    topic = topic_of(settings, ConsultationReceived)
    router_service = router_app.create(settings)
    async with running(router_service, "router") as router, running(intake_app.create(settings), "intake") as intake:
        accepted = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=bearer(PARTNER, Scope.submit))
        assert accepted.status_code == 202, accepted.text
        await router_service.state.runtime.broker.publish(b"\x00not json", topic=topic, key=b"poison")

        def counted(families: dict[str, Metric]) -> bool:
            consumed = families["marugoto_events_consumed"]
            return bool(
                samples(consumed, "_total", topic=topic, outcome="applied")
                and samples(consumed, "_total", topic=topic, outcome="dead_lettered")
                and samples(families["marugoto_dead_letters"], "_total", topic=topic)
            )

        families = await scrape_until(router, counted)

    assert samples(families["marugoto_events_consumed"], "_total", topic=topic, outcome="applied")[0].value == 1
    assert samples(families["marugoto_dead_letters"], "_total", service="router", topic=topic)[0].value == 1


async def test_router_reports_its_open_timers(settings: Settings) -> None:
    upgrade_databases(settings, ["router"])
    async with running(router_app.create(settings), "router") as router:
        assert samples((await scrape(router))["marugoto_open_timers"], service="router")[0].value == 0
        engine = db.make_engine(settings, "router")
        try:
            with db.transaction(engine) as session:
                due = datetime.now(UTC) + timedelta(days=30)
                session.add(Timer(referral_id=str(uuid.uuid4()), kind="reminder", due_at=due))
        finally:
            engine.dispose()
        assert samples((await scrape(router))["marugoto_open_timers"], service="router")[0].value == 1


async def test_every_service_serves_valid_prometheus_text(settings: Settings) -> None:
    upgrade_databases(settings)
    for name, module in APPS.items():
        async with running(module.create(settings), name) as client:
            await client.get("/healthz")
            families = await scrape(client)
        assert samples(families["marugoto_http_requests"], "_total", service=name, route="/healthz"), name
        assert ("marugoto_outbox_backlog" in families) == (module.DEFINITION.outbox_model is not None), name
        assert ("marugoto_open_timers" in families) == (name == "router"), name
