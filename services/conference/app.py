"""Conference's composition root."""

import asyncio

import structlog
from fastapi import FastAPI
from sqlmodel import Session

from services.conference import handlers
from services.conference.api import router
from services.conference.config import build_configs
from services.conference.context import ConferenceContext
from services.conference.models import ConferenceOutbox
from services.conference.promotion_meetings import keep_series_scheduled
from shared.api import in_transaction
from shared.directory import read_directory_files
from shared.directory_in_force import follow_directories
from shared.events import (
    CaseLifeChanged,
    ConferenceCancelled,
    ConferenceDecisionRecorded,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    DisclosureRecorded,
    MeetingInvitation,
    MonitoringRecorded,
    SupportPlanChanged,
)
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings

log = structlog.get_logger()
SERIES_CHECK_S = 60.0


def _wire(runtime: Runtime) -> ConferenceContext:
    files = read_directory_files(runtime.settings.directory_files)
    context = ConferenceContext(configs=build_configs(files), directories=dict(files))
    # The files seed a fresh deployment; the versions the router published since replace them.
    with Session(runtime.engine) as session:
        context.in_force.load_stored(session)
    handlers.wire(runtime, context)
    return context


async def keep_series(runtime: Runtime) -> None:
    """Make sure each municipality with a 推進会議 cadence has its next meeting scheduled."""
    configs = runtime.context_as(ConferenceContext).configs

    def work(session: Session) -> int:
        return keep_series_scheduled(session, configs)

    while True:
        try:
            if await in_transaction(runtime, work):
                runtime.notify_outbox()
        except Exception as exc:
            log.warning("promotion_series_failed", error=repr(exc))
        await asyncio.sleep(SERIES_CHECK_S)


DEFINITION = ServiceDefinition(
    name="conference",
    title="Marugoto conference",
    description="Schedules case meetings (ケース会議) and the 相談支援包括化推進会議, records what they decide, "
    "and keeps each case's 支援プラン, its monitoring and the case's life (終結, 見守り, reopening).",
    outbox_model=ConferenceOutbox,
    publishes=(
        ConferenceScheduled,
        ConferenceRescheduled,
        ConferenceCancelled,
        ConferenceHeld,
        ConferenceDecisionRecorded,
        MeetingInvitation,
        DisclosureRecorded,
        SupportPlanChanged,
        MonitoringRecorded,
        CaseLifeChanged,
    ),
    wire=_wire,
    routers=(router,),
    background=(keep_series, follow_directories),
    opens_sealed=True,
)


def create(settings: Settings) -> FastAPI:
    """The conference app for `settings`."""
    return create_app(DEFINITION, settings)
