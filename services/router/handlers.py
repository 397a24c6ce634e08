"""Router's subscribers."""

from services.router import service
from services.router.models import RouterProcessedEvent
from shared.events import ConsultationReceived
from shared.runtime import Runtime


def wire(runtime: Runtime, ctx: service.Context) -> None:
    """Route every received consultation."""
    runtime.consume(
        RouterProcessedEvent,
        {ConsultationReceived: lambda session, envelope: service.route(session, envelope, ctx)},
        description="Decides the tier and agencies of each consultation (社会福祉法106条の3); requests referrals.",
        prepare=service.prepare_batch,
    )
