"""Monitoring (モニタリング) of approved 支援プラン, kept in the database so that it survives a restart: when a
plan version is approved, a reminder to its 主担当 falls due after the plan's monitoring interval (business
days), then, if no monitoring is recorded, an overdue item for the lead (協働の中核) some business days later.

A recorded monitoring starts the next cycle from its time; a superseded version's timers are dropped. A
case follows one plan in force: approving a version drops the timers of every other plan of the case.
"""

from datetime import datetime
from typing import Literal

import structlog
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.router.batch import RoutingBatch
from services.router.cases import SOURCE, referrals_of_case
from services.router.context import RouterContext
from services.router.feed import FeedEntryKind, add_entry
from services.router.models import CaseFacts, MonitoredPlan, MonitoringTimer, Referral, RouterOutbox
from shared import outbox
from shared.events import (
    LIVE_REFERRAL_STATUSES,
    CaseLifeChanged,
    Envelope,
    MonitoringDue,
    MonitoringRecorded,
    SupportPlanChanged,
    new_event,
)

log = structlog.get_logger()


def plan_changed(batch: RoutingBatch, envelope: Envelope[SupportPlanChanged], *, ctx: RouterContext) -> None:
    """Start monitoring a plan version when it is approved; stop when it is superseded (a draft waits)."""
    plan = envelope.data
    row = batch.get(MonitoredPlan, (plan.plan_id, plan.version))
    if plan.status == "superseded":
        if row is None:
            # Remembered, so that an approval of it arriving late does not start its monitoring.
            row = _plan_row(plan, envelope.municipalitycode)
        row.status = "superseded"
        batch.add(row)
        _drop_pending(batch, plan_id=plan.plan_id, plan_version=plan.version)
        return
    if plan.status != "approved" or row is not None:
        return  # a draft is not monitored; an approval applied before (or superseded since) changes nothing
    newer = select(MonitoredPlan.version).where(
        MonitoredPlan.plan_id == plan.plan_id, col(MonitoredPlan.version) > plan.version
    )
    if batch.exec(newer.limit(1)).first() is not None:
        log.info("plan_approval_outdated", case_id=plan.case_id, plan_id=plan.plan_id, version=plan.version)
        return
    in_force = select(MonitoredPlan).where(MonitoredPlan.case_id == plan.case_id, MonitoredPlan.status == "approved")
    for other in list(batch.exec(in_force)):
        other.status = "superseded"
        batch.add(other)
        _drop_pending(batch, plan_id=other.plan_id, plan_version=other.version)
    row = _plan_row(plan, envelope.municipalitycode)
    batch.add(row)
    _schedule(batch, ctx, row)


def case_life_changed(batch: RoutingBatch, envelope: Envelope[CaseLifeChanged], *, ctx: RouterContext) -> None:
    """Coordination ended (終結, with 見守り or not, or the household moved away): its plan is no longer
    monitored, so no reminder or overdue item follows. A reopened case is monitored again once a plan
    is approved anew."""
    if envelope.data.state not in ("closed", "watching"):
        return
    in_force = select(MonitoredPlan).where(
        MonitoredPlan.case_id == envelope.data.case_id, MonitoredPlan.status == "approved"
    )
    for plan in list(batch.exec(in_force)):
        plan.status = "ended"
        batch.add(plan)
        _drop_pending(batch, plan_id=plan.plan_id, plan_version=plan.version)


def monitoring_recorded(batch: RoutingBatch, envelope: Envelope[MonitoringRecorded], *, ctx: RouterContext) -> None:
    """A monitoring of the plan version in force starts its next cycle from the time it was recorded."""
    recorded = envelope.data
    if recorded.kind != "monitoring":
        return  # an evaluation (評価) leads to a revision, whose approval starts a cycle of its own
    row = batch.get(MonitoredPlan, (recorded.plan_id, recorded.plan_version))
    if row is None or row.status != "approved" or recorded.recorded_at <= row.cycle_from:
        log.info(
            "monitoring_not_rescheduled",
            case_id=recorded.case_id,
            plan_id=recorded.plan_id,
            plan_version=recorded.plan_version,
            reason="unknown or superseded plan version" if row is None or row.status != "approved" else "older",
        )
        return
    _drop_pending(batch, plan_id=row.plan_id, plan_version=row.version)
    row.cycle_from = recorded.recorded_at
    batch.add(row)
    _schedule(batch, ctx, row)


def fire_due(batch: RoutingBatch, ctx: RouterContext, *, now: datetime, limit: int = 100) -> int:
    """Send the monitoring reminders and overdue items that are due; returns how many timers fired."""
    query = (
        select(MonitoringTimer)
        .where(col(MonitoringTimer.fired_at).is_(None), col(MonitoringTimer.due_at) <= now)
        .order_by(col(MonitoringTimer.due_at), col(MonitoringTimer.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    timers = list(batch.exec(query).all())
    for timer in timers:
        timer.fired_at = now
        batch.add(timer)
        plan = batch.get(MonitoredPlan, (timer.plan_id, timer.plan_version))
        if plan is None or plan.status != "approved":
            continue  # superseded after the timer was read: its timers are being dropped
        _announce(batch, ctx, plan, timer)
    return len(timers)


def open_monitoring_timers(session: Session) -> int:
    """How many monitoring reminders and overdue items have not fired yet."""
    query = select(func.count()).select_from(MonitoringTimer).where(col(MonitoringTimer.fired_at).is_(None))
    return session.exec(query).one()


def _plan_row(plan: SupportPlanChanged, municipality_code: str) -> MonitoredPlan:
    return MonitoredPlan(
        plan_id=plan.plan_id,
        version=plan.version,
        case_id=plan.case_id,
        municipality_code=municipality_code,
        main_agency=plan.main_agency,
        interval_days=plan.monitoring_interval_days,
        status="approved",
        cycle_from=plan.changed_at,
    )


def _schedule(batch: RoutingBatch, ctx: RouterContext, plan: MonitoredPlan) -> None:
    """The cycle's reminder, due `interval_days` business days after its start, and its overdue item."""
    deadlines = ctx.configs.active(batch, plan.municipality_code).deadlines
    due = ctx.clock.after_days(plan.cycle_from, plan.interval_days, deadlines.business_hours)
    overdue = ctx.clock.after_days(due, deadlines.monitoring_overdue_after_business_days, deadlines.business_hours)
    for kind, fires in (("reminder", due), ("overdue", overdue)):
        batch.add(
            MonitoringTimer(
                plan_id=plan.plan_id,
                plan_version=plan.version,
                case_id=plan.case_id,
                kind=kind,
                due_at=fires,
                monitoring_due_at=due,
            )
        )


def _drop_pending(batch: RoutingBatch, *, plan_id: str, plan_version: int) -> None:
    batch.flush()  # timers added in this transaction are dropped too
    batch.exec(
        delete(MonitoringTimer).where(
            col(MonitoringTimer.plan_id) == plan_id,
            col(MonitoringTimer.plan_version) == plan_version,
            col(MonitoringTimer.fired_at).is_(None),
        )
    )


def _announce(batch: RoutingBatch, ctx: RouterContext, plan: MonitoredPlan, timer: MonitoringTimer) -> None:
    """Publish the MonitoringDue and put it on its addressee's feed: the 主担当 (reminder) or the lead (overdue)."""
    config = ctx.configs.active(batch, plan.municipality_code)
    lead = config.directory.municipality.lead
    stage: Literal["reminder", "overdue"] = "reminder" if timer.kind == "reminder" else "overdue"
    due = MonitoringDue(
        case_id=plan.case_id,
        plan_id=plan.plan_id,
        plan_version=plan.version,
        stage=stage,
        main_agency=plan.main_agency,
        lead=lead,
        due_at=timer.monitoring_due_at,
    )
    event = new_event(due, source=SOURCE, subject=plan.case_id, municipality_code=plan.municipality_code)
    outbox.stage(batch, RouterOutbox, event)
    facts = batch.get(CaseFacts, plan.case_id)
    if facts is None:
        log.warning("monitoring_due_without_case", case_id=plan.case_id, plan_id=plan.plan_id)
        return
    addressee = plan.main_agency if stage == "reminder" else lead
    # A feed entry is released to an agency on its engagement (a live referral on the case); a 主担当
    # without one hears of its reminder from the event and the agenda, and the lead's feed carries it.
    referral = _live_referral(batch, plan.case_id, addressee) or _live_referral(batch, plan.case_id, lead)
    if referral is None:
        log.warning("monitoring_due_off_feed", case_id=plan.case_id, plan_id=plan.plan_id, addressee=addressee)
        return
    kind: FeedEntryKind = "monitoring_due" if stage == "reminder" else "monitoring_overdue"
    add_entry(batch, config, facts, referral, kind, deadline=timer.monitoring_due_at)


def _live_referral(session: Session, case_id: str, agency_id: str) -> Referral | None:
    """The agency's latest live referral on the case."""
    mine = [r for r in referrals_of_case(session, case_id) if r.agency_id == agency_id]
    live = [r for r in mine if r.status in LIVE_REFERRAL_STATUSES]
    return live[-1] if live else None
