"""Conference's subscribers: consultations, contacts, routing decisions, referrals, consent and transfers of
the cases it meets about, the 支援会議 roster, and the router's overdue monitorings."""

from functools import partial

from services.conference.case_meetings import (
    apply_consent,
    apply_consultation_received,
    apply_contact_recorded,
    apply_referral_requested,
    apply_referral_status,
    apply_routing_decided,
)
from services.conference.context import ConferenceContext
from services.conference.erasure import apply_case_erased
from services.conference.life import apply_case_transferred
from services.conference.models import ConferenceConsumerPosition, ConferenceProcessedEvent
from services.conference.plans import apply_monitoring_due
from services.conference.support_meetings import apply_roster_changed
from shared.events import (
    CaseErased,
    CaseTransferred,
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    ContactRecorded,
    DirectoryPublished,
    MonitoringDue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    SupportMeetingRosterChanged,
)
from shared.runtime import Runtime


def wire(runtime: Runtime, context: ConferenceContext) -> None:
    """Schedule and keep up to date the case meeting of each tier-2 and tier-3 case; follow the roster and
    the cases' consultations."""
    runtime.consume(
        ConferenceProcessedEvent,
        {
            RoutingDecided: partial(apply_routing_decided, configs=context.configs),
            ReferralRequested: apply_referral_requested,
            ReferralStatusChanged: apply_referral_status,
            ConsentGiven: apply_consent,
            ConsentRevoked: apply_consent,
            ConsultationReceived: apply_consultation_received,
            ContactRecorded: apply_contact_recorded,
            SupportMeetingRosterChanged: apply_roster_changed,
            MonitoringDue: apply_monitoring_due,
            CaseTransferred: apply_case_transferred,
            CaseErased: partial(apply_case_erased, keys=runtime.case_keys),
            DirectoryPublished: context.in_force.apply,
        },
        tracking=ConferenceConsumerPosition,
        description="Schedules case meetings (ケース会議) of tier-2/3 cases and keeps their invitation lists current; "
        "keeps the 支援会議 roster and what the 推進会議 agenda counts (overdue monitorings among it); reopens a "
        "closed case on a new contact and closes one that moved away (転居); keeps each municipality's directory in "
        "force (agencies, hours, rooms, lead); drops its copies of an erased case's sensitive data (消去).",
    )
