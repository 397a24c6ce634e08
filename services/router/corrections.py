"""訂正 at the router: intake's PersonalDetailsCorrected puts a notice on the feed of the agency that received
the old value, so that it reads the new one at intake.

The notice goes on the agency's live referral on the case, as every feed entry is released on the agency's
engagement; an agency with none hears of it from nothing here. Under 利用停止 no entry is written
(`feed.add_entry`).
"""

import structlog

from services.router.batch import RoutingBatch
from services.router.cases import referrals_of_case
from services.router.context import RouterContext
from services.router.feed import add_entry
from services.router.models import CaseFacts
from shared.events import LIVE_REFERRAL_STATUSES, Envelope, PersonalDetailsCorrected

log = structlog.get_logger()


def personal_details_corrected(
    batch: RoutingBatch, envelope: Envelope[PersonalDetailsCorrected], *, ctx: RouterContext
) -> None:
    """Tell the agency on its feed that personal details it received were corrected (field names, no values)."""
    corrected = envelope.data
    facts = batch.get(CaseFacts, corrected.case_id)
    if facts is None:
        log.info("correction_before_routing", case_id=corrected.case_id, correction_id=corrected.correction_id)
        return
    live = [
        r
        for r in referrals_of_case(batch, corrected.case_id)
        if r.agency_id == corrected.agency_id and r.status in LIVE_REFERRAL_STATUSES
    ]
    if not live:
        log.info("correction_off_feed", case_id=corrected.case_id, correction_id=corrected.correction_id)
        return
    config = ctx.configs.active(batch, facts.municipality_code)
    add_entry(batch, config, facts, live[-1], "personal_details_corrected")
