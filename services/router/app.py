"""Router's composition root."""

import asyncio

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.router import console, handlers, hsds, monitoring, timers
from services.router.api import router
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.deadlines import Clock
from services.router.directories import ConfigCache, seed_directories
from services.router.models import RouterOutbox
from shared import db
from shared.api import in_transaction
from shared.directory import read_directory_files
from shared.events import (
    AgencyFeedEntry,
    DirectoryPublished,
    DisclosureRecorded,
    MonitoringDue,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.observability import ScrapeGauges
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings

log = structlog.get_logger()


def _wire(runtime: Runtime) -> RouterContext:
    """Build the router's context, store the configured directories and subscribe the consumer."""
    settings = runtime.settings
    ctx = RouterContext(
        configs=ConfigCache(),
        clock=Clock(business_hour_s=settings.router_business_hour_s, wall=settings.router_wall_clock),
    )
    bodies = {code: data for code, (_directory, data) in read_directory_files(settings.directory_files).items()}
    try:
        with db.transaction(runtime.engine) as session:
            seed_directories(session, bodies)
    except IntegrityError:
        # Instances starting together race to store the same new version; the loser finds it stored.
        with db.transaction(runtime.engine) as session:
            seed_directories(session, bodies)
    handlers.wire(runtime, ctx)
    return ctx


async def fire_timers(runtime: Runtime) -> None:
    """Send due reminders, escalations and monitoring items, for as long as the service runs (timers are in
    the database)."""
    ctx = runtime.context_as(RouterContext)
    while True:
        try:
            if await in_transaction(runtime, lambda batch: timers.fire_due_timers(batch, ctx)):
                runtime.notify_outbox()
                continue
        except Exception as exc:
            log.warning("timers_failed", error=repr(exc))
        await asyncio.sleep(runtime.settings.router_timer_interval_s)


def open_timers(runtime: Runtime) -> ScrapeGauges:
    """The referral and monitoring timers not yet fired, counted when Prometheus scrapes."""

    def read() -> dict[str, float]:
        with Session(runtime.engine) as session:
            return {
                "marugoto_open_timers": timers.open_timers(session),
                "marugoto_open_monitoring_timers": monitoring.open_monitoring_timers(session),
            }

    gauges = {
        "marugoto_open_timers": "Referral deadline timers not yet fired",
        "marugoto_open_monitoring_timers": "支援プラン monitoring reminders and overdue items not yet fired",
    }
    return ScrapeGauges(runtime.service, gauges, read)


DEFINITION = ServiceDefinition(
    name="router",
    title="Marugoto router",
    description="Applies the Art. 106-3 tiers (社会福祉法106条の3) and follows every referral until someone owns it.",
    outbox_model=RouterOutbox,
    publishes=(
        RoutingDecided,
        ReferralRequested,
        ReferralStatusChanged,
        ReferralOverdue,
        AgencyFeedEntry,
        DisclosureRecorded,
        MonitoringDue,
        DirectoryPublished,
    ),
    wire=_wire,
    unit_of_work=RoutingBatch,
    routers=(router, hsds.router, console.router),
    background=(fire_timers,),
    collectors=(open_timers,),
    opens_sealed=True,
)


def create(settings: Settings) -> FastAPI:
    """The router app for `settings`."""
    return create_app(DEFINITION, settings)
