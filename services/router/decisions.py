"""Routing decisions (振り分け) of a case, each with the rule and legal basis of every part: the first,
when its consultation arrives, each later one asked for on the case (backup, prefecture support,
return to the community), and a reassessment on the new facts of a later contact. A decision requests
the referrals of the agencies it engages."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import ValidationError
from sqlmodel import col, select

from services.router import rules as routing
from services.router.batch import RoutingBatch
from services.router.cases import (
    CaseView,
    NewCase,
    latest_decision,
    live_load,
    lock_cases,
    referrals_of_case,
    stage,
)
from services.router.context import RouterContext
from services.router.directories import MunicipalityConfig
from services.router.errors import (
    CaseNotRouted,
    NoOwner,
    NotATier1Place,
    NotTheLead,
    UnappliableContact,
    UnroutableConsultation,
)
from services.router.models import CaseFacts, DecisionPublic, PendingContact, RoutingDecision
from services.router.reads import as_seen, decision_access, engagement_of, record_read
from services.router.referrals import refer
from shared import db
from shared.auth import Principal, Scope
from shared.consultation import ConsultationSummary
from shared.directory import UnknownArea
from shared.events import (
    LIVE_REFERRAL_STATUSES,
    ConsultationReceived,
    ContactRecorded,
    DecisionChanges,
    Envelope,
    RoutingDecided,
)
from shared.ids import new_id

log = structlog.get_logger()

DecisionKind = Literal["initial", "backup", "prefecture_support", "return_to_community", "reassessment"]


def prepare_batch(batch: RoutingBatch, envelopes: Sequence[Envelope[Any]]) -> None:
    """Find in one query each which of a batch's consultations were decided before (redeliveries,
    replays) and which have a later contact's facts waiting for them.

    Without it each consultation would ask on its own, and each such query would first write the rows
    staged so far: the batch would be written in as many small pieces as it has consultations.
    """
    case_ids = {e.data.case_id for e in envelopes if isinstance(e.data, ConsultationReceived)}
    # Before looking for waiting contacts: one kept by a concurrent transaction is then committed and seen.
    lock_cases(batch, case_ids)
    batch.decided_before = db.present(batch, col(RoutingDecision.case_id), case_ids)
    batch.contacts_waiting = db.present(batch, col(PendingContact.case_id), case_ids)


def _decided_before(batch: RoutingBatch, case_id: str) -> RoutingDecision | None:
    if batch.decided_before is not None and case_id not in batch.decided_before:
        return None  # prepare_batch found no decision for it
    return latest_decision(batch, case_id)


def route(batch: RoutingBatch, envelope: Envelope[ConsultationReceived], *, ctx: RouterContext) -> DecisionPublic:
    """Decide the case of a received consultation and request its referrals."""
    received = envelope.data
    # Decisions of this batch are not written yet: they are found here, and the query for earlier
    # ones need not write them, so a batch's rows are written together at its commit.
    if received.case_id in batch.decided:
        return batch.decided[received.case_id]
    with batch.no_autoflush:
        existing = _decided_before(batch, received.case_id)
    if existing is not None:
        return DecisionPublic.model_validate(existing.model_dump())
    if not received.consultation.household or not received.consultation.area:
        # The event models accept them empty (what a reader without the case's key sees of sealed fields);
        # a consultation to route names both.
        raise UnroutableConsultation("a consultation names its area and at least one household member")
    config = ctx.configs.active(batch, envelope.municipalitycode)
    try:
        decision = routing.decide(
            received.consultation, config.directory, config.rules, load=live_load(batch, config.directory, config.rules)
        )
    except UnknownArea as error:
        raise UnroutableConsultation(str(error)) from error
    # New rows of a batch are inserted in bulk (shared.bulk): nothing in the batch updates them.
    facts = NewCase(
        **batch.add_row(
            CaseFacts,
            case_id=received.case_id,
            municipality_code=envelope.municipalitycode,
            submitted_by=received.submitted_by,
            consultation=received.consultation.model_dump(mode="json"),
            received_at=received.received_at,
        )
    )
    batch.decided[received.case_id] = _record_decision(
        batch, ctx, config, facts, decision, kind="initial", requested_by=None, previous=None
    )
    _apply_waiting_contacts(batch, ctx, received.case_id)
    return batch.decided[received.case_id]


def escalate(
    batch: RoutingBatch,
    *,
    case_id: str,
    kind: Literal["backup", "prefecture_support", "return_to_community"],
    principal: Principal,
    ctx: RouterContext,
) -> DecisionPublic:
    """Record a new decision on request: backup (→ tier 2), prefecture support (→ tier 3), or return (見守り).

    Returns the new decision as the asker may read it (recorded in the disclosure ledger).
    """
    facts = batch.get(CaseFacts, case_id)
    current = latest_decision(batch, case_id)
    if facts is None or current is None or decision_access(batch, principal, current) is None:
        raise CaseNotRouted(case_id)  # also to an agency with no part in the case: it does not learn that it exists
    config = ctx.configs.active(batch, facts.municipality_code)
    consultation = ConsultationSummary.model_validate(facts.consultation)
    lead = config.directory.municipality.lead
    on_case = {r.agency_id for r in referrals_of_case(batch, case_id) if r.status in LIVE_REFERRAL_STATUSES}
    operator = principal.has(Scope.operator)
    load = live_load(batch, config.directory, config.rules)
    if kind == "backup":
        asker = config.directory.find_agency(principal.agency_id)
        is_place = asker is not None and routing.TIER1_PLACE_ROLE in asker.roles and asker.id in on_case
        if not (is_place or operator):
            raise NotATier1Place("backup is asked by the tier-1 place on the case (指針 第二 一4, seed L2214)")
        decision = routing.decide_backup(consultation, config.directory, config.rules, load=load)
    else:
        if not (principal.agency_id == lead or operator):
            raise NotTheLead("only the lead (協働の中核) asks for this")
        if kind == "prefecture_support":
            decision = routing.decide_prefecture_support(consultation, config.directory, config.rules, load=load)
        else:
            decision = routing.decide_return_to_community(consultation, config.directory, config.rules, load=load)
    # A decision that would engage no one raises NoOwner: refused as a conflict, nothing recorded.
    recorded = _record_decision(
        batch, ctx, config, facts, decision, kind=kind, requested_by=principal.agency_id, previous=current
    )
    access = decision_access(batch, principal, recorded)
    record_read(batch, recorded, principal.agency_id, access)
    if access is None:
        raise CaseNotRouted(case_id)  # unreachable: new decisions only add agencies; rolls the decision back regardless
    return as_seen(batch, recorded, access, principal.agency_id, in_force=True)


def _record_decision(
    batch: RoutingBatch,
    ctx: RouterContext,
    config: MunicipalityConfig,
    facts: CaseView,
    decision: routing.Decision,
    *,
    kind: DecisionKind,
    requested_by: str | None,
    previous: RoutingDecision | None,
    changes: DecisionChanges | None = None,
) -> DecisionPublic:
    if not decision.engaged:
        # Never store a decision that leaves the case without an owner: it is dead-lettered (or refused)
        # with the reason, so an operator fixes the directory and replays it.
        raise NoOwner(
            f"no agency may take case {facts.case_id}: the rules engaged none under directory {config.version} "
            f"of {facts.municipality_code}; fix the directory, then replay"
        )
    now = datetime.now(UTC)
    values = batch.add_row(
        RoutingDecision,
        id=new_id(),
        case_id=facts.case_id,
        sequence=(previous.sequence + 1) if previous else 1,
        kind=kind,
        requested_by=requested_by,
        municipality_code=facts.municipality_code,
        tier=decision.tier,
        lead=decision.lead,
        patterns=[p.model_dump() for p in decision.patterns],
        engaged=[e.model_dump() for e in decision.engaged],
        excluded=[e.model_dump() for e in decision.excluded],
        resource_gaps=[g.model_dump() for g in decision.resource_gaps],
        directory_version=config.version,
        decided_at=now,
        changes=changes.model_dump(mode="json") if changes else None,
    )
    row = DecisionPublic.model_construct(**{**values, "changes": changes})
    stage(
        batch,
        facts,
        RoutingDecided(
            case_id=facts.case_id,
            decision_id=row.id,
            sequence=row.sequence,
            kind=kind,
            tier=decision.tier,
            patterns=decision.pattern_ids,
            lead=decision.lead,
            engaged=[e.model_dump() for e in decision.engaged],
            resource_gaps=decision.gap_types,
            directory_version=config.version,
            urgency=facts.consultation.get("urgency", "routine"),
            decided_at=now,
            changes=changes,
        ),
    )
    # A later decision adds the agencies not already on the case; those already there keep their referral.
    live = (
        {r.agency_id for r in referrals_of_case(batch, facts.case_id) if r.status in LIVE_REFERRAL_STATUSES}
        if previous
        else set()
    )
    for engagement in decision.engaged:
        if engagement.agency_id not in live:
            agency = config.directory.agency(engagement.agency_id)
            refer(
                batch,
                ctx,
                config,
                facts,
                row,
                agency,
                rule=engagement.rule_id,
                basis=engagement.legal_basis,
                tags=engagement.tags,
            )
    return row


def record_contact(
    batch: RoutingBatch, envelope: Envelope[ContactRecorded], *, ctx: RouterContext
) -> DecisionPublic | None:
    """Reassess a case on the new facts a later contact brought; None when it brought none.

    The contact's case may not be routed yet (its consultation comes on another topic, and may come
    later): its facts are then kept and applied once the case has its first decision (`route`).
    """
    contact = envelope.data
    if not (contact.added_members or contact.added_issues or contact.urgency is not None):
        return None
    # Ordered against the routing of the case's consultation by another instance (`prepare_batch`).
    lock_cases(batch, [contact.case_id])
    facts = batch.get(CaseFacts, contact.case_id)
    if facts is None:
        if batch.get(PendingContact, contact.contact_id) is None:
            batch.add_row(
                PendingContact,
                contact_id=contact.contact_id,
                case_id=contact.case_id,
                municipality_code=envelope.municipalitycode,
                contact=contact.model_dump(mode="json"),
                received_at=contact.received_at,
            )
            if batch.contacts_waiting is not None:
                batch.contacts_waiting.add(contact.case_id)
        log.info("contact_kept_until_routed", case_id=contact.case_id, contact_id=contact.contact_id)
        return None
    decided = reassess(batch, ctx, facts, contact)
    if decided is not None and contact.case_id in batch.decided:
        batch.decided[contact.case_id] = decided
    return decided


def reassess(
    batch: RoutingBatch, ctx: RouterContext, facts: CaseFacts, contact: ContactRecorded
) -> DecisionPublic | None:
    """Record a new decision version on the case's facts with the contact's added; None if nothing is new.

    It engages the rules' agencies on the current facts plus every agency still live on the case that
    the rules no longer pick (kept: only a coordinator takes an agency off, by cancelling its referral
    with a coded reason), at the higher of the two tiers; new agencies get referrals.
    """
    before = ConsultationSummary.model_validate(facts.consultation)
    merged = _merged(before, contact)
    if merged is None:
        return None
    consultation, added_members, added_issues = merged
    current = latest_decision(batch, facts.case_id)
    assert current is not None, "a case's facts are recorded with its first decision"
    config = ctx.configs.active(batch, facts.municipality_code)
    try:
        fresh = routing.decide(
            consultation, config.directory, config.rules, load=live_load(batch, config.directory, config.rules)
        )
    except UnknownArea as error:
        raise UnroutableConsultation(str(error)) from error
    live = [r for r in referrals_of_case(batch, facts.case_id) if r.status in LIVE_REFERRAL_STATUSES]
    picked = {engagement.agency_id for engagement in fresh.engaged}
    kept: dict[str, routing.Engagement] = {}
    for referral in live:
        if referral.agency_id in picked or referral.agency_id in kept:
            continue
        engagement = engagement_of(batch, referral)
        reason = f"kept: its referral is live, and only a coordinator takes an agency off ({engagement['reason']})"
        kept[referral.agency_id] = routing.Engagement.model_validate({**engagement, "reason": reason})
    tier = max(current.tier, fresh.tier)
    decision = fresh.model_copy(
        update={"tier": tier, "lead": fresh.lead or current.lead, "engaged": [*fresh.engaged, *kept.values()]}
    )
    urgency_changed = consultation.urgency != before.urgency
    on_case = {r.agency_id for r in live}
    changes = DecisionChanges.model_validate(
        {
            "contact_id": contact.contact_id,
            "tier_from": current.tier,
            "tier_to": tier,
            "added_agencies": [e.agency_id for e in decision.engaged if e.agency_id not in on_case],
            "kept_agencies": list(kept),
            "added_members": added_members,
            "added_issues": added_issues,
            "urgency_from": before.urgency.value if urgency_changed else None,
            "urgency_to": consultation.urgency.value if urgency_changed else None,
        }
    )
    facts.consultation = consultation.model_dump(mode="json")
    batch.add(facts)
    return _record_decision(
        batch, ctx, config, facts, decision, kind="reassessment", requested_by=None, previous=current, changes=changes
    )


def _merged(before: ConsultationSummary, contact: ContactRecorded) -> tuple[ConsultationSummary, int, list[str]] | None:
    """The consultation with the contact's facts added, how many members and which tags are new; None
    if the contact adds nothing the case did not already show."""
    household = list(before.household)
    added_issues: list[str] = []
    # Positions name the members known before this contact, so its issues go on before its new members.
    for item in contact.added_issues:
        if item.position >= len(household):
            raise UnappliableContact(
                f"contact {contact.contact_id} adds issues to member {item.position} of case {contact.case_id}, "
                f"whose household has {len(household)} members"
            )
        member = household[item.position]
        new = [tag for tag in dict.fromkeys(item.issues) if tag not in member.issues]
        if new:
            household[item.position] = member.model_copy(update={"issues": [*member.issues, *new]})
            added_issues += [tag.value for tag in new if tag.value not in added_issues]
    for member in contact.added_members:
        household.append(member)
        added_issues += [tag.value for tag in member.issues if tag.value not in added_issues]
    urgency = contact.urgency if contact.urgency is not None else before.urgency
    if not contact.added_members and not added_issues and urgency == before.urgency:
        return None
    try:
        consultation = ConsultationSummary.model_validate(
            {**before.model_dump(), "household": [m.model_dump() for m in household], "urgency": urgency}
        )
    except ValidationError as error:
        raise UnappliableContact(
            f"contact {contact.contact_id} would make the household of case {contact.case_id} invalid: "
            f"{error.errors()[0]['msg']}"
        ) from None
    return consultation, len(contact.added_members), added_issues


def _apply_waiting_contacts(batch: RoutingBatch, ctx: RouterContext, case_id: str) -> None:
    """Reassess a just-routed case on the contacts that came before its consultation, oldest first."""
    if batch.contacts_waiting is not None and case_id not in batch.contacts_waiting:
        return
    query = (
        select(PendingContact)
        .where(PendingContact.case_id == case_id)
        .order_by(col(PendingContact.received_at), col(PendingContact.contact_id))
    )
    waiting = list(batch.exec(query).all())
    if not waiting:
        return
    facts = batch.get(CaseFacts, case_id)
    assert facts is not None, "just routed"
    for row in waiting:
        batch.delete(row)
        contact = ContactRecorded.model_validate(row.contact)
        try:
            decided = reassess(batch, ctx, facts, contact)
        except UnappliableContact as error:
            # Dead-lettering here would lose the consultation routed with it: the contact alone is dropped.
            log.warning("waiting_contact_unappliable", case_id=case_id, contact_id=contact.contact_id, error=str(error))
            continue
        if decided is not None:
            batch.decided[case_id] = decided
