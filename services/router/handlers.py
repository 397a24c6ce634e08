"""Router's subscribers."""

from functools import partial

from services.router import corrections, decisions, erasure, monitoring, restriction
from services.router.context import RouterContext
from services.router.models import RouterConsumerPosition, RouterProcessedEvent
from shared.events import (
    CaseErased,
    CaseLifeChanged,
    ConsultationReceived,
    ContactRecorded,
    MonitoringRecorded,
    PersonalDetailsCorrected,
    SupportPlanChanged,
    UseRestrictionChanged,
)
from shared.runtime import Runtime


def wire(runtime: Runtime, ctx: RouterContext) -> None:
    """Route every received consultation, reassess cases on new facts, and follow plans' monitoring."""
    runtime.consume(
        RouterProcessedEvent,
        {
            ConsultationReceived: partial(decisions.route, ctx=ctx),
            ContactRecorded: partial(decisions.record_contact, ctx=ctx),
            SupportPlanChanged: partial(monitoring.plan_changed, ctx=ctx),
            MonitoringRecorded: partial(monitoring.monitoring_recorded, ctx=ctx),
            CaseLifeChanged: partial(monitoring.case_life_changed, ctx=ctx),
            UseRestrictionChanged: partial(restriction.use_restriction_changed, ctx=ctx),
            PersonalDetailsCorrected: partial(corrections.personal_details_corrected, ctx=ctx),
            CaseErased: partial(erasure.case_erased, keys=runtime.case_keys),
        },
        tracking=RouterConsumerPosition,
        description=(
            "Decides the tier and agencies of each consultation (社会福祉法106条の3) and requests referrals; "
            "reassesses a case on a later contact's new facts; "
            "times the monitoring of approved 支援プラン until coordination ends; "
            "keeps a case under 利用停止 off every agency's feed and queue until it is lifted; "
            "tells an agency on its feed that personal details it received were corrected (訂正); "
            "drops its copies of an erased case's sensitive data (消去)."
        ),
        prepare=decisions.prepare_batch,
    )
