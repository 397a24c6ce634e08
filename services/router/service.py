"""Router's logic: decide a case under its municipality's rules, record why, and request referrals."""

import uuid
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from services.router.config import MunicipalityConfig
from services.router.models import Referral, RouterOutbox, RoutingDecision
from services.router.rules import decide
from shared import outbox
from shared.consumer import PermanentEventError
from shared.directory import UnknownArea
from shared.events import ConsultationReceived, EngagedAgency, Envelope, ReferralRequested, RoutingDecided, new_event

SOURCE = "/marugoto/router"


class UnknownMunicipality(PermanentEventError):
    """A consultation for a municipality the router has no directory for."""


class UnroutableConsultation(PermanentEventError):
    """A consultation the rules cannot place (e.g. an area not in the municipality's tree)."""


def route(
    session: Session, envelope: Envelope[ConsultationReceived], municipalities: dict[str, MunicipalityConfig]
) -> RoutingDecision:
    """Decide the case of a received consultation and stage `routing.decided` and its referrals."""
    received = envelope.data
    existing = session.exec(select(RoutingDecision).where(RoutingDecision.case_id == received.case_id)).first()
    if existing is not None:
        return existing
    config = municipalities.get(envelope.municipalitycode)
    if config is None:
        raise UnknownMunicipality(f"no directory for municipality {envelope.municipalitycode}")
    try:
        decision = decide(received.consultation, config.directory, config.rules)
    except UnknownArea as error:
        raise UnroutableConsultation(str(error)) from error

    now = datetime.now(UTC)
    row = RoutingDecision(
        id=str(uuid.uuid4()),
        case_id=received.case_id,
        municipality_code=envelope.municipalitycode,
        tier=decision.tier,
        lead=decision.lead,
        patterns=[p.model_dump() for p in decision.patterns],
        engaged=[e.model_dump() for e in decision.engaged],
        excluded=[e.model_dump() for e in decision.excluded],
        resource_gaps=[g.model_dump() for g in decision.resource_gaps],
        directory_version=decision.directory_version,
        decided_at=now,
    )
    session.add(row)
    session.flush()  # the referrals below reference it, and no relationship() orders the inserts

    def stage(data: RoutingDecided | ReferralRequested) -> None:
        event = new_event(data, source=SOURCE, subject=received.case_id, municipality_code=envelope.municipalitycode)
        outbox.stage(session, RouterOutbox, event)

    stage(
        RoutingDecided(
            case_id=received.case_id,
            decision_id=row.id,
            tier=decision.tier,
            patterns=decision.pattern_ids,
            lead=decision.lead,
            engaged=[EngagedAgency(**e.model_dump()) for e in decision.engaged],
            resource_gaps=decision.gap_types,
            directory_version=decision.directory_version,
            urgency=received.consultation.urgency.value,
            decided_at=now,
        )
    )
    for engagement in decision.engaged:
        referral = Referral(
            id=str(uuid.uuid4()),
            case_id=received.case_id,
            decision_id=row.id,
            agency_id=engagement.agency_id,
            agency_type=engagement.agency_type,
            rule_id=engagement.rule_id,
            legal_basis=engagement.legal_basis,
            requested_at=now,
        )
        session.add(referral)
        stage(
            ReferralRequested(
                referral_id=referral.id,
                case_id=referral.case_id,
                decision_id=row.id,
                agency_id=referral.agency_id,
                agency_type=referral.agency_type,
                tier=decision.tier,
                rule_id=referral.rule_id,
                legal_basis=referral.legal_basis,
                requested_at=now,
            )
        )
    return row


def get_decision(session: Session, case_id: str) -> RoutingDecision | None:
    """The decision of a case, if it has been routed."""
    return session.exec(select(RoutingDecision).where(RoutingDecision.case_id == case_id)).first()


def list_referrals(session: Session, *, agency_id: str | None = None, case_id: str | None = None) -> list[Referral]:
    """Referrals of an agency's queue or of a case, oldest first."""
    query = select(Referral).order_by(col(Referral.requested_at), col(Referral.id))
    if agency_id is not None:
        query = query.where(Referral.agency_id == agency_id)
    if case_id is not None:
        query = query.where(Referral.case_id == case_id)
    return list(session.exec(query).all())
