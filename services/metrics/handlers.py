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
    HouseholdLinked,
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
    HouseholdLinked,
)


def wire(runtime: Runtime) -> None:
    """Record consultations, contacts, decisions, referrals, meetings and household links as facts, once each."""
    runtime.consume(
        MetricsProcessedEvent,
        dict.fromkeys(COUNTED, service.count),
        prepare=service.prefetch,
        description=(
            "Records every consultation, contact, decision, referral, meeting and household link for the "
            "indicators, once."
        ),
    )
