"""Intake's subscribers: the router's decisions and referrals, for the case timeline and access."""

from services.intake import service
from services.intake.models import IntakeProcessedEvent
from shared.events import ReferralRequested, ReferralStatusChanged, RoutingDecided
from shared.runtime import Runtime


def wire(runtime: Runtime) -> None:
    """Follow each case's routing decision and the agencies its referrals engage."""
    runtime.consume(
        IntakeProcessedEvent,
        {
            RoutingDecided: lambda session, envelope: service.apply_routing_decided(session, envelope.data),
            ReferralRequested: lambda session, envelope: service.apply_referral_requested(session, envelope.data),
            ReferralStatusChanged: lambda session, envelope: service.apply_referral_status(session, envelope.data),
        },
        description="Shows each routing decision on its case's timeline and lets referred agencies see the case.",
        stages_events=False,  # intake's outbox fills from submissions, which a held consumer would not slow
    )
