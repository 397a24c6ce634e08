"""A case as the router holds it: its facts, its decisions and referrals, and the events it stages
about the case in the outbox of the caller's transaction."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from services.router import rules as routing
from services.router.models import CaseFacts, Referral, ReferralPublic, RouterOutbox, RoutingDecision
from shared import outbox
from shared.events import EventData, new_event

SOURCE = "/marugoto/router"


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case's facts as just recorded in this transaction (the row waits in the unit of work)."""

    case_id: str
    municipality_code: str
    submitted_by: str
    consultation: dict[str, Any]
    received_at: datetime


CaseView = CaseFacts | NewCase
"""A case's facts, stored (ORM) or recorded in this transaction."""

ReferralView = Referral | ReferralPublic
"""A referral, stored (ORM) or requested in this transaction."""


def stage(session: Session, facts: CaseView, data: EventData, *, subject: str | None = None) -> None:
    """Stage an event about the case (keyed by the case unless `subject` says otherwise)."""
    event = new_event(data, source=SOURCE, subject=subject or facts.case_id, municipality_code=facts.municipality_code)
    outbox.stage(session, RouterOutbox, event)


def is_owner(referral: ReferralView) -> bool:
    """True for a referral that makes its agency the case's owner, who sees the whole household."""
    # Both must hold: a partner's referral with its tags lost sees no tag rather than every one.
    return not referral.tags and referral.rule_id in routing.OWNER_RULES


def latest_decision(session: Session, case_id: str) -> RoutingDecision | None:
    """The decision in force for a case (the last one)."""
    query = (
        select(RoutingDecision).where(RoutingDecision.case_id == case_id).order_by(col(RoutingDecision.sequence).desc())
    )
    return session.exec(query).first()


def decisions_of_case(session: Session, case_id: str) -> list[RoutingDecision]:
    """All decisions of a case, first first."""
    query = select(RoutingDecision).where(RoutingDecision.case_id == case_id).order_by(col(RoutingDecision.sequence))
    return list(session.exec(query).all())


def referrals_of_case(session: Session, case_id: str) -> list[Referral]:
    """A case's referrals, oldest first."""
    query = select(Referral).where(Referral.case_id == case_id).order_by(col(Referral.requested_at), col(Referral.id))
    return list(session.exec(query).all())
