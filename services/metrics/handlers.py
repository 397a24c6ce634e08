"""Metrics' subscribers: every event that an indicator counts, applied exactly once."""

from services.metrics import service
from services.metrics.models import MetricsProcessedEvent
from shared.events import (
    CaseLifeChanged,
    CaseTransferred,
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    EventData,
    HouseholdLinked,
    MonitoringRecorded,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    SupportPlanChanged,
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
    SupportPlanChanged,
    MonitoringRecorded,
    CaseLifeChanged,
    CaseTransferred,
)


def wire(runtime: Runtime) -> None:
    """Record each counted event (cases, referrals, meetings, plans, case life, transfers) as facts, once."""
    runtime.consume(
        MetricsProcessedEvent,
        dict.fromkeys(COUNTED, service.count),
        prepare=service.prefetch,
        description=(
            "Records every consultation, contact, decision, referral, meeting, household link, 支援プラン "
            "version, monitoring and evaluation, 終結/見守り/reopening and 転居 for the indicators, once."
        ),
    )
