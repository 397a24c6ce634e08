"""Router's subscribers."""

from functools import partial

from services.router import decisions
from services.router.context import RouterContext
from services.router.models import RouterProcessedEvent
from shared.events import ConsultationReceived
from shared.runtime import Runtime


def wire(runtime: Runtime, ctx: RouterContext) -> None:
    """Route every received consultation."""
    runtime.consume(
        RouterProcessedEvent,
        {ConsultationReceived: partial(decisions.route, ctx=ctx)},
        description="Decides the tier and agencies of each consultation (社会福祉法106条の3); requests referrals.",
        prepare=decisions.prepare_batch,
    )
