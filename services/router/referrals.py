"""Referrals through their lifecycle (FHIR Task states): requested with deadlines, moved by the agency
they are addressed to, re-routed when rejected or failed, so that no case is ever left without an owner
(no たらい回し)."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import exists
from sqlmodel import Session, col, select

from services.router import rules as routing
from services.router.batch import RoutingBatch
from services.router.cases import CaseView, latest_decision, live_load, referrals_of_case, stage
from services.router.context import RouterContext
from services.router.directories import MunicipalityConfig
from services.router.errors import (
    IllegalTransition,
    LastOpenReferral,
    LeadCannotReject,
    NotTheLead,
    NotYourReferral,
    ReasonRequired,
    ReferralNotFound,
)
from services.router.feed import add_entry
from services.router.models import (
    CaseFacts,
    DecisionPublic,
    Referral,
    ReferralPublic,
    ReferralTransition,
    RestrictedCase,
    RoutingDecision,
    Timer,
    TransitionCreate,
)
from shared.auth import Principal, Scope
from shared.consultation import ConsultationSummary
from shared.directory import Agency
from shared.events import LIVE_REFERRAL_STATUSES, ReferralRequested, ReferralStatus, ReferralStatusChanged
from shared.ids import new_id

# FHIR Task states; each maps to the states it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"received", "accepted", "rejected", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"in_progress", "completed", "cancelled"}),
    "in_progress": frozenset({"on_hold", "completed", "failed", "cancelled"}),
    "on_hold": frozenset({"in_progress", "completed", "failed", "cancelled"}),
    "rejected": frozenset(),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
REJECT_REASONS = frozenset({"out_of_scope", "no_capacity", "not_in_service_area", "conflict_of_interest", "other"})
CLOSE_REASONS = frozenset(
    {"goals_met", "moved_away", "declined_by_person", "handed_over", "no_contact", "deceased", "duplicate", "other"}
)
# Referrals the lead holds as the case's owner of last resort: it may not reject them.
LAST_RESORT_RULES = frozenset({routing.LEAD.id, routing.REROUTE_TO_LEAD.id, routing.ESCALATION.id})
# Moves that end a referral without handing it on (a rejection re-routes it, so the case keeps an owner).
CLOSING = frozenset({"cancelled", "completed", "failed"})


def refer(
    batch: RoutingBatch,
    ctx: RouterContext,
    config: MunicipalityConfig,
    facts: CaseView,
    decision: RoutingDecision | DecisionPublic,
    agency: Agency,
    *,
    rule: str,
    basis: str,
    tags: Sequence[str],
    replaces: str | None = None,
) -> ReferralPublic:
    """Request a referral of the case to `agency`, with its reminder and escalation timers and a feed entry."""
    now = datetime.now(UTC)
    hours = config.deadlines.business_hours
    deadline = ctx.clock.after(now, config.deadlines.escalate_after_business_hours, hours)
    values = batch.add_row(
        Referral,
        id=new_id(),
        case_id=facts.case_id,
        decision_id=decision.id,
        municipality_code=facts.municipality_code,
        agency_id=agency.id,
        agency_type=agency.type,
        tier=decision.tier,
        rule_id=rule,
        legal_basis=basis,
        replaces_referral_id=replaces,
        requested_at=now,
        deadline=deadline,
        updated_at=now,
        tags=list(tags),
        version=1,
    )
    referral = ReferralPublic.model_construct(**{name: values[name] for name in ReferralPublic.model_fields})
    reminder = ctx.clock.after(now, config.deadlines.reminder_after_business_hours, hours)
    batch.add_row(Timer, referral_id=referral.id, kind="reminder", due_at=reminder)
    batch.add_row(Timer, referral_id=referral.id, kind="escalation", due_at=deadline)
    stage(
        batch,
        facts,
        ReferralRequested(
            referral_id=referral.id,
            case_id=facts.case_id,
            decision_id=decision.id,
            agency_id=agency.id,
            agency_type=agency.type,
            tier=decision.tier,
            rule_id=rule,
            legal_basis=basis,
            requested_at=now,
            replaces_referral_id=replaces,
            deadline=deadline,
            tags=list(tags),
        ),
    )
    add_entry(batch, config, facts, referral, "referral_requested")
    return referral


def transition(
    batch: RoutingBatch, *, referral_id: str, body: TransitionCreate, principal: Principal, ctx: RouterContext
) -> Referral:
    """Move a referral to its next state; a rejection or a failure re-routes it so the case keeps an owner.

    Cancelling is how a coordinator takes an agency off the case (a reassessment never does): the
    case's lead or an operator cancels any referral of the case, with a coded reason.
    """
    # The row lock orders this move against the escalation timer firing on the same referral: whichever
    # comes second sees the status the first one left.
    referral = locked_referral(batch, referral_id)
    if referral is None or not _knows_of_case(batch, principal, referral):
        # To a stranger the referral (and so its case) does not exist.
        raise ReferralNotFound(referral_id)
    facts = batch.get(CaseFacts, referral.case_id)
    assert facts is not None, "a referral always belongs to a routed case"
    decision = latest_decision(batch, referral.case_id)
    is_lead = decision is not None and decision.lead == principal.agency_id
    if body.to == "cancelled":
        if not (is_lead or principal.has(Scope.operator)):
            raise NotTheLead("only the case's lead (協働の中核) or an operator cancels a referral")
    elif principal.agency_id != referral.agency_id:
        raise NotYourReferral("only the agency a referral is addressed to moves it")
    if body.to not in TRANSITIONS[referral.status]:
        raise IllegalTransition(referral.status, body.to, TRANSITIONS[referral.status])
    if body.to == "rejected" and referral.rule_id in LAST_RESORT_RULES:
        # A rejection re-routes to the next agency of the rejected one's type: for the lead that would
        # hand work meant for another type to whatever agency shares the lead's type.
        raise LeadCannotReject("the lead (協働の中核) cannot reject its case; hand it over by a new decision")
    _check_reason(body)
    config = ctx.configs.active(batch, referral.municipality_code)
    leads = {config.directory.municipality.lead, decision.lead if decision else None}
    if body.to in CLOSING and referral.agency_id in leads and not _others_live(batch, referral):
        raise LastOpenReferral(
            "this is the lead's (協働の中核) referral and the case's last open one: closing it would leave the "
            "case without an owner; return it to the community or hand it over by a new decision first"
        )
    change_status(
        batch, config, facts, referral, to=body.to, reason=body.reason_code, note=body.note, by=principal.agency_id
    )
    # A failure of the lead's own referral is not handed on: the next agency of the lead's type is not a
    # lead, and the lead would only be handed its own work back.
    if body.to == "rejected" or (body.to == "failed" and referral.agency_id not in leads):
        _reroute(batch, ctx, config, facts, referral)
    return referral


def locked_referral(session: Session, referral_id: str) -> Referral | None:
    """The referral as last committed, its row locked until the transaction ends (PostgreSQL)."""
    query = (
        select(Referral).where(Referral.id == referral_id).with_for_update().execution_options(populate_existing=True)
    )
    return session.exec(query).first()


def change_status(
    batch: RoutingBatch,
    config: MunicipalityConfig,
    facts: CaseFacts,
    referral: Referral,
    *,
    to: ReferralStatus,
    reason: str | None,
    note: str | None,
    by: str,
) -> None:
    """Record one move of a referral: its row and version, the transition, the event and the feed entry."""
    previous = referral.status
    now = datetime.now(UTC)
    referral.status = to
    referral.status_reason = reason
    referral.updated_at = now
    referral.version += 1
    batch.add(referral)
    batch.add(
        ReferralTransition(
            referral_id=referral.id,
            from_status=previous,
            to_status=to,
            reason_code=reason,
            note=note,
            changed_by=by,
            at=now,
        )
    )
    stage(
        batch,
        facts,
        ReferralStatusChanged(
            referral_id=referral.id,
            case_id=referral.case_id,
            agency_id=referral.agency_id,
            from_status=previous,
            to_status=to,
            reason_code=reason,
            changed_by=by,
            changed_at=now,
            version=referral.version,
        ),
    )
    add_entry(batch, config, facts, referral, "status_changed")


def list_referrals(
    session: Session,
    *,
    agency_id: str | None = None,
    case_id: str | None = None,
    status: str | None = None,
    municipalities: frozenset[str] | None = None,
    hide_restricted: bool = False,
) -> list[Referral]:
    """Referrals of an agency's queue or of a case, oldest first; only of `municipalities` when given;
    without the cases under 利用停止 if `hide_restricted`."""
    query = select(Referral).order_by(col(Referral.requested_at), col(Referral.id))
    if hide_restricted:
        query = query.where(~exists(select(RestrictedCase.case_id).where(RestrictedCase.case_id == Referral.case_id)))
    if agency_id is not None:
        query = query.where(Referral.agency_id == agency_id)
    if case_id is not None:
        query = query.where(Referral.case_id == case_id)
    if status is not None:
        query = query.where(Referral.status == status)
    if municipalities is not None:
        query = query.where(col(Referral.municipality_code).in_(municipalities))
    return list(session.exec(query).all())


def _knows_of_case(session: Session, principal: Principal, referral: Referral) -> bool:
    """True for an operator of the case's municipality, or an agency with any referral on the case."""
    if not principal.serves(referral.municipality_code):
        return False
    if principal.has(Scope.operator) or principal.agency_id == referral.agency_id:
        return True
    query = select(Referral.id).where(Referral.case_id == referral.case_id, Referral.agency_id == principal.agency_id)
    return session.exec(query.limit(1)).first() is not None


def _others_live(session: Session, referral: Referral) -> bool:
    return any(
        r.id != referral.id and r.status in LIVE_REFERRAL_STATUSES for r in referrals_of_case(session, referral.case_id)
    )


def _check_reason(body: TransitionCreate) -> None:
    codes = REJECT_REASONS if body.to == "rejected" else CLOSE_REASONS
    if body.to in {"rejected", "completed", "failed", "cancelled"} and body.reason_code not in codes:
        raise ReasonRequired(body.to, codes)


def _reroute(
    batch: RoutingBatch, ctx: RouterContext, config: MunicipalityConfig, facts: CaseFacts, rejected: Referral
) -> ReferralPublic:
    """The next eligible agency of the same type, or else the lead, takes the rejected or failed referral over."""
    consultation = ConsultationSummary.model_validate(facts.consultation)
    tried = {r.agency_id for r in referrals_of_case(batch, facts.case_id) if r.agency_type == rejected.agency_type}
    decision = batch.get(RoutingDecision, rejected.decision_id)
    assert decision is not None
    candidates = routing.alternatives(
        consultation,
        config.directory,
        config.rules,
        rejected.agency_type,
        excluding=tried,
        load=live_load(batch, config.directory, config.rules),
    )
    if candidates:
        # The next agency of the type does the same work, so it learns the same tags and no more.
        rule, agency, tags = routing.REROUTE, candidates[0], list(rejected.tags)
    else:
        rule, agency, tags = routing.REROUTE_TO_LEAD, config.directory.agency(config.directory.municipality.lead), []
    return refer(
        batch,
        ctx,
        config,
        facts,
        decision,
        agency,
        rule=rule.id,
        basis=rule.legal_basis,
        tags=tags,
        replaces=rejected.id,
    )
