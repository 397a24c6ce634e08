"""Conference's subscribers: routing decisions, referrals and consent of the cases it meets about."""

from collections.abc import Mapping

from services.conference import service
from services.conference.models import ConferenceProcessedEvent
from shared.consumer import register_consumers
from shared.events import (
    ConsentGiven,
    ConsentRevoked,
    Envelope,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.runtime import Runtime


def wire(runtime: Runtime, configs: Mapping[str, service.MunicipalityConference]) -> None:
    """Schedule and keep up to date the case meeting of each tier-2 and tier-3 case."""

    def on_routing_decided(envelope: Envelope[RoutingDecided]) -> None:
        runtime.apply_once(
            ConferenceProcessedEvent, envelope, lambda s: service.apply_routing_decided(s, envelope, configs)
        )

    def on_referral_requested(envelope: Envelope[ReferralRequested]) -> None:
        runtime.apply_once(
            ConferenceProcessedEvent, envelope, lambda s: service.apply_referral_requested(s, envelope.data)
        )

    def on_referral_status(envelope: Envelope[ReferralStatusChanged]) -> None:
        runtime.apply_once(
            ConferenceProcessedEvent, envelope, lambda s: service.apply_referral_status(s, envelope.data)
        )

    def on_consent(envelope: Envelope[ConsentGiven] | Envelope[ConsentRevoked]) -> None:
        runtime.apply_once(ConferenceProcessedEvent, envelope, lambda s: service.apply_consent(s, envelope.data))

    register_consumers(
        runtime.broker,
        runtime.settings,
        service="conference",
        handlers={
            RoutingDecided: on_routing_decided,
            ReferralRequested: on_referral_requested,
            ReferralStatusChanged: on_referral_status,
            ConsentGiven: on_consent,
            ConsentRevoked: on_consent,
        },
        description="Schedules case meetings (ケース会議) of tier-2/3 cases and keeps their invitation lists current.",
    )
