"""Intake's subscribers: the router's decisions and referrals, for the case timeline and access; and every
other service's releases of case information, for the disclosure ledger."""

from services.intake import retention, service
from services.intake.context import IntakeContext
from services.intake.models import IntakeConsumerPosition, IntakeProcessedEvent
from shared.events import (
    CaseLifeChanged,
    DirectoryPublished,
    DisclosureRecorded,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.runtime import Runtime


def wire(runtime: Runtime, context: IntakeContext) -> None:
    """Follow each case's routing decision and the agencies its referrals engage; keep the ledger and the
    directory in force."""
    runtime.consume(
        IntakeProcessedEvent,
        {
            RoutingDecided: service.apply_routing_decided,
            ReferralRequested: service.apply_referral_requested,
            ReferralStatusChanged: service.apply_referral_status,
            DisclosureRecorded: service.apply_disclosure_recorded,
            CaseLifeChanged: retention.apply_case_life_changed,
            DirectoryPublished: context.in_force.apply,
        },
        tracking=IntakeConsumerPosition,
        description="Shows each routing decision on its case's timeline, lets referred agencies see the case, "
        "writes every release of case information by another service to the disclosure ledger, "
        "keeps each municipality's directory in force (the areas a consultation may name), "
        "and learns each case's 終結, from which its retention period counts.",
        stages_events=False,  # intake's outbox fills from submissions, which a held consumer would not slow
    )
