"""Metrics' composition root."""

from fastapi import FastAPI

from services.metrics.api import router
from services.metrics.handlers import wire
from shared.runtime import ServiceDefinition, create_app
from shared.settings import Settings

DEFINITION = ServiceDefinition(
    name="metrics",
    title="Marugoto metrics",
    description="Outcome indicators (成果把握項目) per municipality and fiscal year, from the event stream.",
    outbox_model=None,
    publishes=(),
    wire=wire,
    routers=(router,),
)


def create(settings: Settings) -> FastAPI:
    """The metrics app for `settings`."""
    return create_app(DEFINITION, settings)
