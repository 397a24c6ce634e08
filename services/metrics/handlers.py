"""Metrics' subscribers: every event that an indicator counts, applied exactly once."""

from services.metrics import service
from services.metrics.models import MetricsProcessedEvent
from shared.consumer import register_consumers
from shared.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.runtime import Runtime

COUNTED: tuple[type[EventData], ...] = (
    ConsultationReceived,
    ContactRecorded,
    RoutingDecided,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralOverdue,
    ConferenceScheduled,
    ConferenceRescheduled,
    ConferenceCancelled,
    ConferenceHeld,
)


def wire(runtime: Runtime) -> None:
    """Record consultations, contacts, decisions, referrals and meetings as facts, once each."""

    def on_event(envelope: Envelope[EventData]) -> None:
        runtime.apply_once(MetricsProcessedEvent, envelope, lambda session: service.count(session, envelope))

    register_consumers(
        runtime.broker,
        runtime.settings,
        service="metrics",
        handlers=dict.fromkeys(COUNTED, on_event),
        description="Records every consultation, contact, decision, referral and meeting for the indicators, once.",
    )
