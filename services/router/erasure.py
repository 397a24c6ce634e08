"""消去 at the router: intake's CaseErased makes the router drop its copies of the case's sensitive data.

The case's consultation summary keeps only what is not about the household (pathway, urgency, …), the
contacts waiting for routing go, and the issue tags, the reasons written with them and the coordinators'
notes are emptied from its decisions, referrals and feed entries. Ids, tiers, statuses and dates stay:
they are what the owner of every referral and the counts rest on. The process forgets the case's key.
"""

from typing import Any

import structlog
from sqlmodel import col, delete, select, update

from services.router.batch import RoutingBatch
from services.router.models import CaseFacts, FeedEntry, PendingContact, Referral, ReferralTransition, RoutingDecision
from shared.case_keys import CaseKeys
from shared.events import CaseErased, Envelope

log = structlog.get_logger()

# The consultation summary's fields that say nothing about the household (shared/consultation.py).
_KEPT = ("pathway", "found_by", "contact", "existing_services_fit", "backup_requested", "urgency")


def case_erased(batch: RoutingBatch, envelope: Envelope[CaseErased], *, keys: CaseKeys | None) -> None:
    """Drop the router's copies of an erased case's sensitive fields."""
    case_id = envelope.data.case_id
    if keys is not None:
        keys.forget(case_id)
    facts = batch.get(CaseFacts, case_id)
    if facts is not None:
        facts.consultation = {
            **{k: v for k, v in facts.consultation.items() if k in _KEPT},
            "area": "",
            "household": [],
        }
        batch.add(facts)
    batch.exec(delete(PendingContact).where(col(PendingContact.case_id) == case_id))
    for decision in batch.exec(select(RoutingDecision).where(col(RoutingDecision.case_id) == case_id)).all():
        decision.engaged = [_without(e, tags=[], reason="") for e in decision.engaged]
        decision.excluded = [_without(e, tags=[], reason="") for e in decision.excluded]
        decision.patterns = [_without(p, reason="") for p in decision.patterns]
        if decision.changes:
            decision.changes = _without(decision.changes, added_issues=[])
        batch.add(decision)
    referral_ids = list(batch.exec(select(Referral.id).where(col(Referral.case_id) == case_id)).all())
    batch.exec(update(Referral).where(col(Referral.case_id) == case_id).values(tags=[]))
    if referral_ids:
        batch.exec(
            update(ReferralTransition).where(col(ReferralTransition.referral_id).in_(referral_ids)).values(note=None)
        )
    for entry in batch.exec(select(FeedEntry).where(col(FeedEntry.case_id) == case_id)).all():
        entry.body = _without(entry.body, issues=[], area="")
        batch.add(entry)
    log.info("case_erased", case_id=case_id, reason=envelope.data.reason)


def _without(row: dict[str, Any], **emptied: Any) -> dict[str, Any]:
    """`row` with the named keys it has set to their empty values."""
    return {**row, **{k: v for k, v in emptied.items() if k in row}}
