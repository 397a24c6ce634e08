"""Conference's subscribers: routing decisions, referrals and consent of the cases it meets about."""

from functools import partial

from services.conference.case_meetings import (
    apply_consent,
    apply_referral_requested,
    apply_referral_status,
    apply_routing_decided,
)
from services.conference.context import ConferenceContext
from services.conference.models import ConferenceProcessedEvent
from shared.events import ConsentGiven, ConsentRevoked, ReferralRequested, ReferralStatusChanged, RoutingDecided
from shared.runtime import Runtime


def wire(runtime: Runtime, context: ConferenceContext) -> None:
    """Schedule and keep up to date the case meeting of each tier-2 and tier-3 case."""
    runtime.consume(
        ConferenceProcessedEvent,
        {
            RoutingDecided: partial(apply_routing_decided, configs=context.configs),
            ReferralRequested: apply_referral_requested,
            ReferralStatusChanged: apply_referral_status,
            ConsentGiven: apply_consent,
            ConsentRevoked: apply_consent,
        },
        description="Schedules case meetings (ケース会議) of tier-2/3 cases and keeps their invitation lists current.",
    )
