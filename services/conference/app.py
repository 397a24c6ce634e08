"""Conference's composition root."""

import asyncio
from datetime import UTC, datetime

import anyio
import structlog
from fastapi import FastAPI
from sqlmodel import select

from services.conference import handlers, service
from services.conference.api import router
from services.conference.models import ConferenceOutbox, Meeting
from shared import db
from shared.calendar import JST
from shared.events import (
    ConferenceCancelled,
    ConferenceDecisionRecorded,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    DisclosureRecorded,
    MeetingInvitation,
)
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings

log = structlog.get_logger()
SERIES_CHECK_S = 60.0


def _wire(runtime: Runtime) -> None:
    configs = service.load_configs(runtime.settings.directory_files)
    runtime.state["configs"] = configs
    handlers.wire(runtime, configs)


async def keep_series(runtime: Runtime) -> None:
    """Make sure each municipality with a 推進会議 cadence has its next meeting scheduled."""
    configs: dict[str, service.MunicipalityConference] = runtime.state["configs"]

    def once() -> int:
        created = 0
        with db.transaction(runtime.engine) as session:
            for code, config in configs.items():
                promotion = config.settings.promotion_meeting
                upcoming = session.exec(
                    select(Meeting).where(
                        Meeting.municipality_code == code,
                        Meeting.kind == "promotion_meeting",
                        Meeting.status == "scheduled",
                    )
                ).first()
                if upcoming is not None:
                    continue
                last = service.last_held_promotion_meeting(session, code)
                after = (last.starts_at if last and last.starts_at else datetime.now(UTC)).date()
                first_day = service.next_series_date(promotion, after)
                if first_day is None:
                    continue
                start = datetime.combine(first_day, datetime.min.time(), tzinfo=JST)
                service.schedule_promotion_meeting(session, config, not_before=start)
                created += 1
        return created

    while True:
        try:
            if await anyio.to_thread.run_sync(once):
                runtime.notify_outbox()
        except Exception as exc:
            log.warning("promotion_series_failed", error=repr(exc))
        await asyncio.sleep(SERIES_CHECK_S)


DEFINITION = ServiceDefinition(
    name="conference",
    title="Marugoto conference",
    description="Schedules case meetings (ケース会議) and the 相談支援包括化推進会議, and records what they decide.",
    outbox_model=ConferenceOutbox,
    publishes=(
        ConferenceScheduled,
        ConferenceRescheduled,
        ConferenceCancelled,
        ConferenceHeld,
        ConferenceDecisionRecorded,
        MeetingInvitation,
        DisclosureRecorded,
    ),
    wire=_wire,
    routers=(router,),
    background=(keep_series,),
)


def create(settings: Settings) -> FastAPI:
    """The conference app for `settings`."""
    return create_app(DEFINITION, settings)
