"""利用停止 (個人情報保護法 Art. 35) at the router: intake's UseRestrictionChanged keeps a case off every
agency's feed and queue until it is lifted.

While it holds, no feed entry of the case is written (`feed.add_entry`) or shown (`feed.feed_entries`,
the agencies' `GET /v1/referrals`); the lead is told by one notice on its feed. When it is lifted, each
agency with a live referral on the case gets an entry that brings the case back to its feed.
"""

from datetime import datetime

import structlog

from services.router.batch import RoutingBatch
from services.router.cases import referrals_of_case
from services.router.context import RouterContext
from services.router.feed import add_entry
from services.router.models import CaseFacts, RestrictedCase
from shared.events import LIVE_REFERRAL_STATUSES, Envelope, UseRestrictionChanged

log = structlog.get_logger()


def use_restriction_changed(
    batch: RoutingBatch, envelope: Envelope[UseRestrictionChanged], *, ctx: RouterContext
) -> None:
    """Put the case under 利用停止, or lift it; a change older than the one in force changes nothing."""
    change = envelope.data
    row = batch.get(RestrictedCase, change.case_id)
    facts = batch.get(CaseFacts, change.case_id)
    if change.restricted:
        if row is not None:
            return
        batch.add(RestrictedCase(case_id=change.case_id, request_id=change.request_id, since=change.changed_at))
        batch.flush()
    else:
        if row is None or row.request_id != change.request_id:
            return  # lifting a stop that is not the one in force (late, or delivered again)
        batch.delete(row)
        batch.flush()
    if facts is None:
        log.info("use_restriction_before_routing", case_id=change.case_id, restricted=change.restricted)
        return
    _notify(batch, ctx, facts, change.restricted, change.changed_at)


def _notify(batch: RoutingBatch, ctx: RouterContext, facts: CaseFacts, restricted: bool, at: datetime) -> None:
    config = ctx.configs.active(batch, facts.municipality_code)
    live = [r for r in referrals_of_case(batch, facts.case_id) if r.status in LIVE_REFERRAL_STATUSES]
    if restricted:
        lead = config.directory.municipality.lead
        owner = next((r for r in live if r.agency_id == lead), None)
        if owner is not None:
            add_entry(batch, config, facts, owner, "use_restricted")
        return
    for referral in live:
        add_entry(batch, config, facts, referral, "use_restriction_lifted")
