"""Router's subscribers."""

from services.router import service
from services.router.models import RouterProcessedEvent
from shared.consumer import register_consumers
from shared.events import ConsultationReceived, Envelope
from shared.runtime import Runtime


def wire(runtime: Runtime, ctx: service.Context) -> None:
    """Route every received consultation."""

    def on_consultation_received(envelope: Envelope[ConsultationReceived]) -> None:
        runtime.apply_once(RouterProcessedEvent, envelope, lambda session: service.route(session, envelope, ctx))

    register_consumers(
        runtime.broker,
        runtime.settings,
        service="router",
        handlers={ConsultationReceived: on_consultation_received},
        description="Decides the tier and agencies of each consultation (社会福祉法106条の3); requests referrals.",
    )
