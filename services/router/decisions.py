"""Routing decisions (振り分け) of a case, each with the rule and legal basis of every part: the first,
when its consultation arrives, and each later one asked for on the case (backup, prefecture support,
return to the community). A decision requests the referrals of the agencies it engages."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlmodel import col

from services.router import rules as routing
from services.router.batch import RoutingBatch
from services.router.cases import CaseView, NewCase, latest_decision, referrals_of_case, stage
from services.router.context import RouterContext
from services.router.directories import MunicipalityConfig
from services.router.errors import CaseNotRouted, NoOwner, NotATier1Place, NotTheLead, UnroutableConsultation
from services.router.models import CaseFacts, DecisionPublic, RoutingDecision
from services.router.reads import as_seen, decision_access, record_read
from services.router.referrals import refer
from shared import db
from shared.auth import Principal, Scope
from shared.consultation import ConsultationSummary
from shared.directory import UnknownArea
from shared.events import LIVE_REFERRAL_STATUSES, ConsultationReceived, Envelope, RoutingDecided
from shared.ids import new_id

DecisionKind = Literal["initial", "backup", "prefecture_support", "return_to_community"]


def prepare_batch(batch: RoutingBatch, envelopes: Sequence[Envelope[Any]]) -> None:
    """Find in one query which of a batch's consultations were decided before (redeliveries, replays).

    Without it each consultation would ask on its own, and each such query would first write the rows
    staged so far: the batch would be written in as many small pieces as it has consultations.
    """
    case_ids = {e.data.case_id for e in envelopes if isinstance(e.data, ConsultationReceived)}
    batch.decided_before = db.present(batch, col(RoutingDecision.case_id), case_ids)


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
    config = ctx.configs.active(batch, envelope.municipalitycode)
    try:
        decision = routing.decide(received.consultation, config.directory, config.rules)
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
    return batch.decided[received.case_id]


def escalate(
    batch: RoutingBatch, *, case_id: str, kind: DecisionKind, principal: Principal, ctx: RouterContext
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
    if kind == "backup":
        asker = config.directory.find_agency(principal.agency_id)
        is_place = asker is not None and routing.TIER1_PLACE_ROLE in asker.roles and asker.id in on_case
        if not (is_place or operator):
            raise NotATier1Place("backup is asked by the tier-1 place on the case (指針 第二の4)")
        decision = routing.decide_backup(consultation, config.directory, config.rules)
    else:
        if not (principal.agency_id == lead or operator):
            raise NotTheLead("only the lead (協働の中核) asks for this")
        if kind == "prefecture_support":
            decision = routing.decide_prefecture_support(consultation, config.directory, config.rules)
        else:
            decision = routing.decide_return_to_community(consultation, config.directory, config.rules)
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
    )
    row = DecisionPublic.model_construct(**values)
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
