"""Metrics' subscribers: every event that an indicator counts, applied exactly once."""

from services.metrics import service
from services.metrics.models import MetricsProcessedEvent
from shared.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
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
    runtime.consume(
        MetricsProcessedEvent,
        dict.fromkeys(COUNTED, service.count),
        prepare=service.prefetch,
        description="Records every consultation, contact, decision, referral and meeting for the indicators, once.",
    )
