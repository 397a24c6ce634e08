"""Metrics' subscribers: every counted event, exactly once."""

from services.metrics import service
from services.metrics.models import MetricsProcessedEvent
from shared.consumer import register_consumers
from shared.events import (
    ConferenceHeld,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    ReferralRequested,
    RoutingDecided,
)
from shared.runtime import Runtime

COUNTED = (
    ConsultationReceived,
    ContactRecorded,
    RoutingDecided,
    ReferralRequested,
    ConferenceScheduled,
    ConferenceHeld,
)


def wire(runtime: Runtime) -> None:
    """Count consultations, contacts, decisions, referrals and meetings into the indicators."""

    def on_event(envelope: Envelope[EventData]) -> None:
        runtime.apply_once(MetricsProcessedEvent, envelope, lambda session: service.count(session, envelope))

    register_consumers(
        runtime.broker,
        runtime.settings,
        service="metrics",
        handlers=dict.fromkeys(COUNTED, on_event),
        description="Counts every consultation, contact, decision, referral and meeting into the indicators, once.",
    )
