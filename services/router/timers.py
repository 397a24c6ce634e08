"""Referral deadlines, kept in the database so that they survive a restart: a reminder to an agency
that has not answered, then an escalation that hands its referral to the lead (協働の中核). The same
round fires the plans' monitoring timers (`monitoring`)."""

from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.router import monitoring
from services.router import rules as routing
from services.router.batch import RoutingBatch
from services.router.cases import stage
from services.router.context import RouterContext
from services.router.feed import add_entry
from services.router.models import CaseFacts, RoutingDecision, Timer
from services.router.referrals import change_status, locked_referral, refer
from shared.events import ReferralOverdue

# Referrals still waiting for their agency's answer: the only ones a timer chases.
AWAITING = frozenset({"requested", "received"})
# Who closes a referral the escalation timer superseded (ReferralTransition.changed_by).
TIMER_ACTOR = "router:escalation"


def fire_due_timers(batch: RoutingBatch, ctx: RouterContext, *, now: datetime | None = None, limit: int = 100) -> int:
    """Send the referral reminders and escalations, and the plans' monitoring reminders and overdue items,
    that are due; returns how many timers fired."""
    moment = now or datetime.now(UTC)
    return _fire_referral_timers(batch, ctx, now=moment, limit=limit) + monitoring.fire_due(
        batch, ctx, now=moment, limit=limit
    )


def _fire_referral_timers(batch: RoutingBatch, ctx: RouterContext, *, now: datetime, limit: int) -> int:
    query = (
        select(Timer)
        .where(col(Timer.fired_at).is_(None), col(Timer.due_at) <= now)
        .order_by(col(Timer.due_at), col(Timer.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    timers = list(batch.exec(query).all())
    for timer in timers:
        timer.fired_at = now
        batch.add(timer)
        # Waits for an accept of the same referral in flight, then sees it accepted (see referrals.transition).
        referral = locked_referral(batch, timer.referral_id)
        if referral is None or referral.status not in AWAITING:
            continue  # accepted, rejected or closed in time: nothing to chase
        facts = batch.get(CaseFacts, referral.case_id)
        assert facts is not None
        config = ctx.configs.active(batch, referral.municipality_code)
        lead = config.directory.municipality.lead
        escalate = timer.kind == "escalation" and referral.agency_id != lead
        stage(
            batch,
            facts,
            ReferralOverdue(
                referral_id=referral.id,
                case_id=referral.case_id,
                agency_id=referral.agency_id,
                stage="escalation" if timer.kind == "escalation" else "reminder",
                due_at=timer.due_at,
                escalated_to=lead if escalate else None,
            ),
        )
        add_entry(batch, config, facts, referral, "reminder" if timer.kind == "reminder" else "escalated")
        if escalate:
            decision = batch.get(RoutingDecision, referral.decision_id)
            assert decision is not None
            refer(
                batch,
                ctx,
                config,
                facts,
                decision,
                config.directory.agency(lead),
                rule=routing.ESCALATION.id,
                basis=routing.ESCALATION.legal_basis,
                tags=[],
                replaces=referral.id,
            )
            # The lead has taken the work over: the silent agency's referral ends, and its access with it.
            change_status(
                batch, config, facts, referral, to="cancelled", reason="superseded", note=None, by=TIMER_ACTOR
            )
    return len(timers)


def open_timers(session: Session) -> int:
    """How many reminders and escalations have not fired yet."""
    query = select(func.count()).select_from(Timer).where(col(Timer.fired_at).is_(None))
    return session.exec(query).one()
