"""Monitoring timers of approved 支援プラン: persisted, counted in business days on the municipality's
calendar (JST), a reminder to the 主担当 then an overdue item for the lead, each as a MonitoringDue and a
feed entry; a recorded monitoring restarts the cycle, a superseded plan drops its timers, and a timer
set before a restart still fires."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import col, select

from services.cli import upgrade_databases
from services.router import decisions, monitoring, timers
from services.router.app import create
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.models import MonitoringTimer, RouterProcessedEvent
from shared import db
from shared.calendar import JST
from shared.consumer import Effect, apply_batch
from shared.events import (
    CaseLifeChanged,
    ConsultationReceived,
    Envelope,
    EventData,
    MonitoringDue,
    MonitoringRecorded,
    PlanStatus,
    SupportPlanChanged,
    new_event,
)
from shared.runtime import Runtime
from shared.settings import Settings
from tests.conftest import new_topic_prefix
from tests.router.conftest import MUNICIPALITY, as_agency, referrals_by_agency, route
from tests.router.test_need_to_know import feed_of, staged
from tests.router.test_referral_life import move

LEAD, MAIN = "nabari-houkatsu", "nabari-jiritsu"
# Friday 8 January 2027; Monday the 11th is 成人の日, a national holiday.
APPROVED = datetime(2027, 1, 8, 10, 0, tzinfo=JST)
# Five business days on: Tuesday 12 … Friday 15, then Monday 18 (the holiday and the weekends skipped).
DUE = datetime(2027, 1, 18, 10, 0, tzinfo=JST)
# Five business days after that (the directory's default): Monday 25.
OVERDUE = datetime(2027, 1, 25, 10, 0, tzinfo=JST)


def plan(
    case_id: str,
    status: PlanStatus,
    *,
    plan_id: str,
    version: int = 1,
    main_agency: str = MAIN,
    at: datetime = APPROVED,
    interval: int = 5,
) -> Envelope[SupportPlanChanged]:
    data = SupportPlanChanged(
        case_id=case_id,
        plan_id=plan_id,
        version=version,
        status=status,
        main_agency=main_agency,
        roles={LEAD: "coordination", main_agency: "主担当"},
        goals=2,
        monitoring_interval_days=interval,
        next_evaluation=(at + timedelta(days=90)).date(),
        changed_by=LEAD,
        approved_at_meeting="meeting-1" if status == "approved" else None,
        changed_at=at,
    )
    return new_event(data, source="/test", subject=case_id, municipality_code=MUNICIPALITY)


def monitored(
    case_id: str, plan_id: str, at: datetime, *, version: int = 1, kind: str = "monitoring"
) -> Envelope[MonitoringRecorded]:
    data = MonitoringRecorded.model_validate(
        {
            "case_id": case_id,
            "plan_id": plan_id,
            "plan_version": version,
            "kind": kind,
            "recorded_by": MAIN,
            "recorded_at": at,
            "on_time": True,
        }
    )
    return new_event(data, source="/test", subject=case_id, municipality_code=MUNICIPALITY)


def consume(engine: Engine, ctx: RouterContext, *envelopes: Envelope[Any]) -> list[bool]:
    """Apply one consumer batch as the router's subscriber does."""
    effects: dict[type[EventData], Effect] = {
        SupportPlanChanged: partial(monitoring.plan_changed, ctx=ctx),
        MonitoringRecorded: partial(monitoring.monitoring_recorded, ctx=ctx),
        CaseLifeChanged: partial(monitoring.case_life_changed, ctx=ctx),
        ConsultationReceived: partial(decisions.route, ctx=ctx),
    }
    return apply_batch(
        engine,
        RouterProcessedEvent,
        [(envelope, effects[type(envelope.data)]) for envelope in envelopes],
        consumer="marugoto-router",
        unit=RoutingBatch,
        prepare=decisions.prepare_batch,
    )


def fire(engine: Engine, ctx: RouterContext, now: datetime) -> int:
    with db.transaction(engine, RoutingBatch) as session:
        return timers.fire_due_timers(session, ctx, now=now)


def dues(engine: Engine, case_id: str) -> list[tuple[str, int, str, datetime]]:
    return [
        (d.stage, d.plan_version, d.main_agency, d.due_at)
        for d in staged(engine, MonitoringDue)
        if d.case_id == case_id
    ]


def monitoring_entries(engine: Engine, agency_id: str, case_id: str) -> list[tuple[str, datetime]]:
    return [
        (e.kind, datetime.fromisoformat(e.body["deadline"]))
        for e in feed_of(engine, agency_id, case_id)
        if e.kind.startswith("monitoring")
    ]


def routed_case(engine: Engine, ctx: RouterContext) -> str:
    """A tier-2 case in 地域07 whose agencies all accepted (so no referral timer interferes)."""
    case_id = route(engine, ctx, "chiiki-07", ["poverty"], ["employment"])
    for agency_id, referral in referrals_by_agency(engine, case_id).items():
        move(engine, ctx, referral.id, "accepted", by=as_agency(agency_id))
    return case_id


def pending(engine: Engine, case_id: str) -> list[tuple[str, int, datetime]]:
    with db.transaction(engine, RoutingBatch) as session:
        rows = session.exec(
            select(MonitoringTimer)
            .where(MonitoringTimer.case_id == case_id, col(MonitoringTimer.fired_at).is_(None))
            .order_by(col(MonitoringTimer.due_at))
        ).all()
    return [(r.kind, r.plan_version, r.due_at) for r in rows]


def test_an_approved_plan_reminds_its_main_agency_then_tells_the_lead_it_is_overdue(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id, plan_id = routed_case(router_engine, ctx), str(uuid.uuid4())
    consume(router_engine, ctx, plan(case_id, "drafted", plan_id=plan_id))
    assert pending(router_engine, case_id) == [], "a draft is not monitored"
    consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id))
    assert pending(router_engine, case_id) == [("reminder", 1, DUE), ("overdue", 1, OVERDUE)]

    fire(router_engine, ctx, DUE - timedelta(minutes=1))
    assert dues(router_engine, case_id) == []
    fire(router_engine, ctx, DUE)
    assert dues(router_engine, case_id) == [("reminder", 1, MAIN, DUE)]
    assert monitoring_entries(router_engine, MAIN, case_id) == [("monitoring_due", DUE)]
    assert monitoring_entries(router_engine, LEAD, case_id) == [], "the reminder is the 主担当's"

    fire(router_engine, ctx, OVERDUE)
    assert dues(router_engine, case_id)[1:] == [("overdue", 1, MAIN, DUE)], "due when it was, overdue now"
    assert monitoring_entries(router_engine, LEAD, case_id) == [("monitoring_overdue", DUE)]
    fire(router_engine, ctx, OVERDUE + timedelta(days=60))
    assert len(dues(router_engine, case_id)) == 2, "each timer fires once"


def test_a_recorded_monitoring_starts_the_next_cycle_from_its_time(router_engine: Engine, ctx: RouterContext) -> None:
    case_id, plan_id = routed_case(router_engine, ctx), str(uuid.uuid4())
    consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id))
    # Monitored on Thursday 14 January: the next is due five business days on, Thursday 21.
    consume(router_engine, ctx, monitored(case_id, plan_id, datetime(2027, 1, 14, 15, 0, tzinfo=JST)))
    next_due = datetime(2027, 1, 21, 15, 0, tzinfo=JST)
    next_overdue = datetime(2027, 1, 28, 15, 0, tzinfo=JST)
    assert pending(router_engine, case_id) == [("reminder", 1, next_due), ("overdue", 1, next_overdue)]

    fire(router_engine, ctx, DUE)
    assert dues(router_engine, case_id) == [], "the old cycle's reminder is gone"
    # An evaluation, or a monitoring older than the cycle, moves nothing.
    consume(router_engine, ctx, monitored(case_id, plan_id, datetime(2027, 1, 20, 9, 0, tzinfo=JST), kind="evaluation"))
    consume(router_engine, ctx, monitored(case_id, plan_id, datetime(2027, 1, 13, 9, 0, tzinfo=JST)))
    fire(router_engine, ctx, next_due)
    assert dues(router_engine, case_id) == [("reminder", 1, MAIN, next_due)]


def life(case_id: str, state: str, at: datetime) -> Envelope[CaseLifeChanged]:
    data = CaseLifeChanged.model_validate(
        {"case_id": case_id, "state": state, "reason": "goals_met", "main_agency": MAIN, "changed_at": at}
    )
    return new_event(data, source="/test", subject=case_id, municipality_code=MUNICIPALITY)


def test_the_end_of_coordination_stops_the_monitoring(router_engine: Engine, ctx: RouterContext) -> None:
    """A 終結 (with 見守り or not) ends the plan's monitoring: no reminder, no overdue item; a monitoring
    recorded afterwards starts nothing again."""
    for state in ("watching", "closed"):
        case_id, plan_id = routed_case(router_engine, ctx), str(uuid.uuid4())
        consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id))
        consume(router_engine, ctx, life(case_id, "reopened", APPROVED + timedelta(hours=1)))
        assert len(pending(router_engine, case_id)) == 2, "a reopening is not an end"
        consume(router_engine, ctx, life(case_id, state, APPROVED + timedelta(hours=2)))
        assert pending(router_engine, case_id) == [], state
        consume(router_engine, ctx, monitored(case_id, plan_id, APPROVED + timedelta(hours=3)))
        fire(router_engine, ctx, OVERDUE + timedelta(days=30))
        assert dues(router_engine, case_id) == [], state


def test_a_superseded_plan_drops_its_timers_and_the_next_version_is_monitored(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id, plan_id = routed_case(router_engine, ctx), str(uuid.uuid4())
    consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id))
    revised = datetime(2027, 1, 13, 10, 0, tzinfo=JST)
    # Version 2 approved (the 支援決定 of the revision) before version 1 is marked superseded.
    consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id, version=2, at=revised, interval=10))
    assert {version for _, version, _ in pending(router_engine, case_id)} == {2}
    consume(router_engine, ctx, plan(case_id, "superseded", plan_id=plan_id, version=1))
    # A late approval of the version now superseded starts nothing.
    consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id, version=1))
    assert {version for _, version, _ in pending(router_engine, case_id)} == {2}

    # Ten business days after Wednesday 13 January: Wednesday 27 (v1's reminder of the 18th never fires).
    second_due = datetime(2027, 1, 27, 10, 0, tzinfo=JST)
    fire(router_engine, ctx, second_due)
    assert dues(router_engine, case_id) == [("reminder", 2, MAIN, second_due)]

    consume(router_engine, ctx, plan(case_id, "superseded", plan_id=plan_id, version=2, at=revised))
    assert pending(router_engine, case_id) == []
    assert fire(router_engine, ctx, OVERDUE + timedelta(days=60)) == 0


def test_a_main_agency_with_no_live_referral_is_reminded_through_the_leads_feed(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id, plan_id = routed_case(router_engine, ctx), str(uuid.uuid4())
    consume(router_engine, ctx, plan(case_id, "approved", plan_id=plan_id, main_agency="nabari-shakyo"))
    fire(router_engine, ctx, DUE)
    assert dues(router_engine, case_id) == [("reminder", 1, "nabari-shakyo", DUE)], "the event still names it"
    assert feed_of(router_engine, "nabari-shakyo", case_id) == [], "no engagement, no feed entry"
    assert monitoring_entries(router_engine, LEAD, case_id) == [("monitoring_due", DUE)]


# A restart: the timer is written by one app, fired by another over the same database.


@pytest.fixture
async def router_settings(settings: Settings) -> Settings:
    upgrade_databases(settings, ["router"])
    return settings.model_copy(update={"relay_enabled": False})


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[Runtime]:
    """The app started (its lifespan), as its runtime; stopped on leaving."""
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        assert isinstance(runtime, Runtime)
        yield runtime


async def test_a_timer_set_before_a_restart_fires_after_it(router_settings: Settings, kafka_bootstrap: str) -> None:
    plan_id = str(uuid.uuid4())
    async with running(create(router_settings)) as runtime:
        ctx = runtime.context_as(RouterContext)
        case_id = routed_case(runtime.engine, ctx)
        approved = plan(case_id, "approved", plan_id=plan_id)
        assert runtime.apply_once(RouterProcessedEvent, approved, partial(monitoring.plan_changed, ctx=ctx))
        assert pending(runtime.engine, case_id) == [("reminder", 1, DUE), ("overdue", 1, OVERDUE)]

    # The same database; topics and consumer group of their own, so that the start does not wait for the
    # broker to give up on the first instance's membership (nothing here is read from Kafka).
    restarted = router_settings.model_copy(update={"kafka_topic_prefix": await new_topic_prefix(kafka_bootstrap)})
    async with running(create(restarted)) as runtime:
        ctx = runtime.context_as(RouterContext)
        fire(runtime.engine, ctx, DUE)
        assert dues(runtime.engine, case_id) == [("reminder", 1, MAIN, DUE)]
        assert pending(runtime.engine, case_id) == [("overdue", 1, OVERDUE)]
        assert monitoring_entries(runtime.engine, MAIN, case_id) == [("monitoring_due", DUE)]
