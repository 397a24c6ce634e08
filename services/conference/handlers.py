"""Conference's subscribers: routing decisions, referrals and consent of the cases it meets about."""

from collections.abc import Mapping

from services.conference import service
from services.conference.models import ConferenceProcessedEvent
from shared.events import ConsentGiven, ConsentRevoked, ReferralRequested, ReferralStatusChanged, RoutingDecided
from shared.runtime import Runtime


def wire(runtime: Runtime, configs: Mapping[str, service.MunicipalityConference]) -> None:
    """Schedule and keep up to date the case meeting of each tier-2 and tier-3 case."""
    runtime.consume(
        ConferenceProcessedEvent,
        {
            RoutingDecided: lambda session, envelope: service.apply_routing_decided(session, envelope, configs),
            ReferralRequested: lambda session, envelope: service.apply_referral_requested(session, envelope.data),
            ReferralStatusChanged: lambda session, envelope: service.apply_referral_status(session, envelope.data),
            ConsentGiven: lambda session, envelope: service.apply_consent(session, envelope.data),
            ConsentRevoked: lambda session, envelope: service.apply_consent(session, envelope.data),
        },
        description="Schedules case meetings (ケース会議) of tier-2/3 cases and keeps their invitation lists current.",
    )
