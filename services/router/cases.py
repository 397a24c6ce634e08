"""A case as the router holds it: its facts, its decisions and referrals, and the events it stages
about the case in the outbox of the caller's transaction."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, String, bindparam, func, text
from sqlmodel import Session, col, select

from services.router import rules as routing
from services.router.models import CaseFacts, Referral, ReferralPublic, RouterOutbox, RoutingDecision
from shared import outbox
from shared.directory import Directory
from shared.events import LIVE_REFERRAL_STATUSES, EventData, new_event

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


def lock_cases(session: Session, case_ids: Collection[str]) -> None:
    """Hold the cases' locks until the transaction ends (PostgreSQL advisory locks; SQLite has one writer).

    A consultation and a later contact of the same case come on different topics and may be applied at
    once by two instances: whichever takes the lock second sees what the first committed, so a contact
    is never kept waiting for a case that was routed meanwhile (`decisions.record_contact`).
    """
    if not case_ids or session.get_bind().dialect.name != "postgresql":
        return
    # Two-key locks, a key space apart from the one-key locks of the outbox relay; taken in key order, so
    # that two transactions locking several cases never wait on each other in a cycle.
    statement = text(
        "SELECT pg_advisory_xact_lock(hashtext('router.case'), key) FROM "
        "(SELECT DISTINCT hashtext(case_id) AS key FROM unnest(:case_ids) AS case_id ORDER BY key) AS keys"
    ).bindparams(bindparam("case_ids", sorted(case_ids), type_=ARRAY(String)))
    session.connection().execute(statement)


def live_load(session: Session, directory: Directory, rules: routing.RuleSet) -> dict[str, int] | None:
    """Live referrals held by each agency with a capacity, for capacity routing; None when it is off.

    Counted over every case and municipality: an agency serving several has one capacity. Referrals
    this transaction requested count too (the query writes its waiting rows first).
    """
    if not rules.capacity_routing:
        return None
    limited = [agency.id for agency in directory.agencies if agency.capacity is not None]
    if not limited:
        return {}
    query = (
        select(Referral.agency_id, func.count())
        .where(col(Referral.agency_id).in_(limited), col(Referral.status).in_(LIVE_REFERRAL_STATUSES))
        .group_by(col(Referral.agency_id))
    )
    return {agency_id: int(count) for agency_id, count in session.exec(query).all()}
