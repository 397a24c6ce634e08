"""Router's composition root."""

from fastapi import FastAPI

from services.router.api import router
from services.router.handlers import wire
from services.router.models import RouterOutbox
from shared.events import ReferralRequested, RoutingDecided
from shared.runtime import ServiceDefinition, create_app
from shared.settings import Settings

DEFINITION = ServiceDefinition(
    name="router",
    title="Marugoto router",
    description="Applies the Art. 106-3 tiers (社会福祉法106条の3) and requests referrals, recording why.",
    outbox_model=RouterOutbox,
    publishes=(RoutingDecided, ReferralRequested),
    wire=wire,
    routers=(router,),
)


def create(settings: Settings) -> FastAPI:
    """The router app for `settings`."""
    return create_app(DEFINITION, settings)
