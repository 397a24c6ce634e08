"""Who reads what: the municipalities a credential reaches, and how much of a case's decisions each
reader sees (need-to-know), every read of a decision recorded in the disclosure ledger (開示の記録)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlmodel import Session

from services.router.cases import SOURCE, decisions_of_case, is_owner, referrals_of_case
from services.router.models import DecisionPublic, Referral, RouterOutbox, RoutingDecision
from shared.auth import Principal, Scope
from shared.disclosure import stage_disclosure
from shared.events import LIVE_REFERRAL_STATUSES

# An agency whose referral is live or was completed takes part in the case; a rejected, failed or
# cancelled (e.g. superseded) one no longer does.
TAKES_PART = LIVE_REFERRAL_STATUSES | {"completed"}
DECISION_FIELDS = tuple(DecisionPublic.model_fields)
# What a partner does not learn: why the case is what it is, who else was left out or is missing, and
# what a reassessment changed (other agencies, the household's new tags).
PARTNER_WITHHELD = frozenset({"patterns", "excluded", "resource_gaps", "changes"})


def served_by(principal: Principal) -> frozenset[str] | None:
    """The municipalities a credential reaches, or None when it reaches every one (the platform scope)."""
    return None if principal.has(Scope.platform) else principal.municipalities


@dataclass(frozen=True)
class DecisionAccess:
    """What a reader may see of a case's decisions, and the legal basis of the release (開示の根拠)."""

    view: Literal["full", "partner"]
    basis: Literal["operator", "engagement"]
    basis_ref: str | None
    referrals: tuple[Referral, ...]  # the reader's own referrals on the case, live ones first


def decision_access(
    session: Session, principal: Principal, in_force: RoutingDecision | DecisionPublic
) -> DecisionAccess | None:
    """How `principal` may read a case's decisions, or None when the case is none of its business."""
    if not principal.serves(in_force.municipality_code):
        return None
    if principal.has(Scope.operator):
        return DecisionAccess(view="full", basis="operator", basis_ref=None, referrals=())
    mine = sorted(
        (
            r
            for r in referrals_of_case(session, in_force.case_id)
            if r.agency_id == principal.agency_id and r.status in TAKES_PART
        ),
        key=lambda r: r.status not in LIVE_REFERRAL_STATUSES,
    )
    if not mine:
        return None
    owning = [r for r in mine if is_owner(r)]
    if owning or in_force.lead == principal.agency_id:
        return DecisionAccess(view="full", basis="engagement", basis_ref=(owning or mine)[0].id, referrals=tuple(mine))
    return DecisionAccess(view="partner", basis="engagement", basis_ref=mine[0].id, referrals=tuple(mine))


def read_decisions(
    session: Session, *, case_id: str, principal: Principal, in_force_only: bool
) -> list[DecisionPublic] | None:
    """A case's decisions (or the one in force) as `principal` may see them, each read in the disclosure
    ledger; None when the answer is 404, as for a case that does not exist."""
    decisions = decisions_of_case(session, case_id)
    if not decisions:
        return None  # nothing to record: without a case there is no municipality to keep the row under
    in_force = decisions[-1]
    access = decision_access(session, principal, in_force)
    record_read(session, in_force, principal.agency_id, access)
    if access is None:
        return None
    shown = [in_force] if in_force_only else decisions
    return [as_seen(session, d, access, principal.agency_id, in_force=d is in_force) for d in shown]


def as_seen(
    session: Session,
    decision: RoutingDecision | DecisionPublic,
    access: DecisionAccess,
    agency_id: str,
    *,
    in_force: bool,
) -> DecisionPublic:
    """The decision as a reader with `access` sees it: whole, or (a partner) its own engagement only."""
    full = DecisionPublic.model_validate({**decision.model_dump(), "view": "full"})
    if access.view == "full":
        return full
    own = [e for e in full.engaged if e.get("agency_id") == agency_id]
    if not own:
        # A re-routed or escalated referral stems from a decision that names another agency, and a later
        # decision may not name the partner at all: the decision in force still shows why it is there.
        origin = [r for r in access.referrals if in_force or r.decision_id == decision.id]
        own = [engagement_of(session, origin[0])] if origin else []
    hidden: dict[str, Any] = {name: None if name == "changes" else [] for name in PARTNER_WITHHELD}
    return full.model_copy(update={**hidden, "engaged": own, "view": "partner"})


def record_read(
    session: Session, decision: RoutingDecision | DecisionPublic, reader: str, access: DecisionAccess | None
) -> None:
    """Record a read of the case's decision in the disclosure ledger: what was released, or the refusal."""
    if access is None:
        fields: Sequence[str] = DECISION_FIELDS
    elif access.view == "partner":
        fields = [name for name in DECISION_FIELDS if name not in PARTNER_WITHHELD]
    else:
        fields = DECISION_FIELDS
    stage_disclosure(
        session,
        RouterOutbox,
        source=SOURCE,
        municipality_code=decision.municipality_code,
        case_id=decision.case_id,
        recipient=reader,
        channel="decision_read",
        fields=fields,
        basis=access.basis if access else "none",
        basis_ref=access.basis_ref if access else None,
        released=access is not None,
    )


def engagement_of(session: Session, referral: Referral) -> dict[str, Any]:
    """The engagement a referral carries out: as its decision recorded it, or as the referral says."""
    origin = session.get(RoutingDecision, referral.decision_id)
    for entry in origin.engaged if origin else []:
        if entry.get("agency_id") == referral.agency_id and entry.get("rule_id") == referral.rule_id:
            return entry
    return {
        "agency_id": referral.agency_id,
        "agency_type": referral.agency_type,
        "rule_id": referral.rule_id,
        "legal_basis": referral.legal_basis,
        "reason": "; ".join(f"tag {tag} → {referral.agency_type}" for tag in referral.tags),
        "tags": list(referral.tags),
    }
