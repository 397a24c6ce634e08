"""Conference's subscribers."""

from services.conference import service
from services.conference.models import ConferenceProcessedEvent
from shared.consumer import register_consumers
from shared.events import Envelope, RoutingDecided
from shared.runtime import Runtime


def wire(runtime: Runtime) -> None:
    """Schedule a case meeting for every tier-2 and tier-3 routing decision."""

    def on_routing_decided(envelope: Envelope[RoutingDecided]) -> None:
        runtime.apply_once(
            ConferenceProcessedEvent, envelope, lambda session: service.schedule_case_meeting(session, envelope)
        )

    register_consumers(
        runtime.broker,
        runtime.settings,
        service="conference",
        handlers={RoutingDecided: on_routing_decided},
        description="Schedules the case meeting (ケース会議) of each tier-2 and tier-3 decision.",
    )
