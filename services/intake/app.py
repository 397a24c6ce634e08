"""Intake's composition root."""

from fastapi import FastAPI

from services.intake.api import router
from services.intake.models import FIELD_LABELS, IntakeOutbox
from shared.events import ConsultationReceived
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings


def _wire(runtime: Runtime) -> None:
    """Intake consumes nothing yet."""


DEFINITION = ServiceDefinition(
    name="intake",
    title="Marugoto intake",
    description="Partner agencies submit consultations (相談) about a whole household (世帯丸ごと).",
    outbox_model=IntakeOutbox,
    publishes=(ConsultationReceived,),
    wire=_wire,
    routers=(router,),
    field_labels=FIELD_LABELS,
)


def create(settings: Settings) -> FastAPI:
    """The intake app for `settings`."""
    return create_app(DEFINITION, settings)
