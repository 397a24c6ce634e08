"""Conference's composition root."""

from fastapi import FastAPI

from services.conference.api import router
from services.conference.handlers import wire
from services.conference.models import ConferenceOutbox
from shared.events import ConferenceScheduled
from shared.runtime import ServiceDefinition, create_app
from shared.settings import Settings

DEFINITION = ServiceDefinition(
    name="conference",
    title="Marugoto conference",
    description="Schedules case meetings (ケース会議) and the 相談支援包括化推進会議.",
    outbox_model=ConferenceOutbox,
    publishes=(ConferenceScheduled,),
    wire=wire,
    routers=(router,),
)


def create(settings: Settings) -> FastAPI:
    """The conference app for `settings`."""
    return create_app(DEFINITION, settings)
