"""Metrics' subscribers: every event that an indicator counts, applied exactly once; and the directory in
force for each municipality (its sectors, general windows and `Rules.directory`), from the router's
DirectoryPublished (shared/directory_in_force.py)."""

from services.metrics import service
from services.metrics.models import MetricsConsumerPosition, MetricsProcessedEvent
from shared.directory_in_force import DirectoriesInForce
from shared.events import (
    CaseLifeChanged,
    CaseTransferred,
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    DirectoryPublished,
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


def wire(runtime: Runtime, in_force: DirectoriesInForce) -> None:
    """Record each counted event (cases, referrals, meetings, plans, case life, transfers) as facts, once;
    keep each municipality's counting rules from the directory in force."""
    runtime.consume(
        MetricsProcessedEvent,
        {**dict.fromkeys(COUNTED, service.count), DirectoryPublished: in_force.apply},
        prepare=service.prefetch,
        tracking=MetricsConsumerPosition,
        description=(
            "Records every consultation, contact, decision, referral, meeting, household link, 支援プラン "
            "version, monitoring and evaluation, 終結/見守り/reopening and 転居 for the indicators, once; "
            "keeps each municipality's counting rules from its directory in force."
        ),
    )
