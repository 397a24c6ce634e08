"""Intake's subscribers: the router's decisions and referrals, for the case timeline and access."""

from services.intake import service
from services.intake.models import IntakeProcessedEvent
from shared.consumer import register_consumers
from shared.events import Envelope, ReferralRequested, ReferralStatusChanged, RoutingDecided
from shared.runtime import Runtime


def wire(runtime: Runtime) -> None:
    """Follow each case's routing decision and the agencies its referrals engage."""

    def on_routing_decided(envelope: Envelope[RoutingDecided]) -> None:
        runtime.apply_once(
            IntakeProcessedEvent, envelope, lambda session: service.apply_routing_decided(session, envelope.data)
        )

    def on_referral_requested(envelope: Envelope[ReferralRequested]) -> None:
        runtime.apply_once(
            IntakeProcessedEvent, envelope, lambda session: service.apply_referral_requested(session, envelope.data)
        )

    def on_referral_status_changed(envelope: Envelope[ReferralStatusChanged]) -> None:
        runtime.apply_once(
            IntakeProcessedEvent, envelope, lambda session: service.apply_referral_status(session, envelope.data)
        )

    register_consumers(
        runtime.broker,
        runtime.settings,
        service="intake",
        handlers={
            RoutingDecided: on_routing_decided,
            ReferralRequested: on_referral_requested,
            ReferralStatusChanged: on_referral_status_changed,
        },
        description="Shows each routing decision on its case's timeline and lets referred agencies see the case.",
    )
