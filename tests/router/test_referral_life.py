"""A referral's life closes access: escalation supersedes the silent agency's referral, the lead's last
open referral cannot be closed, each change carries the referral's version, and a timer firing while
the agency accepts resolves to one outcome (PostgreSQL row locks, two sessions in two threads)."""

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import col, select

from services.router import cases, referrals, timers
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.models import Referral, ReferralTransition, TransitionCreate
from shared import db
from shared.auth import Principal, Scope
from shared.errors import DomainError
from shared.events import ReferralStatusChanged
from shared.problems import status_of
from tests.router.conftest import as_agency, referrals_by_agency, route
from tests.router.test_need_to_know import feed_of, read, staged

LEAD = "nabari-houkatsu"
OFFICE = "hellowork-nabari"
# 地域07, tier 2: the lead, the 自立相談支援機関 (poverty) and the employment office (employment).
POVERTY, EMPLOYMENT = ["poverty"], ["employment"]


def move(
    engine: Engine, ctx: RouterContext, referral_id: str, to: str, reason: str | None = None, *, by: Principal
) -> Referral:
    with db.transaction(engine, RoutingBatch) as session:
        body = TransitionCreate.model_validate({"to": to, "reason_code": reason})
        return referrals.transition(session, referral_id=referral_id, body=body, principal=by, ctx=ctx)


def refused(
    engine: Engine, ctx: RouterContext, referral_id: str, to: str, reason: str, *, by: Principal
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        move(engine, ctx, referral_id, to, reason, by=by)
    return caught.value


def replacing(engine: Engine, case_id: str, referral_id: str) -> list[Referral]:
    with db.transaction(engine, RoutingBatch) as session:
        return [r for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id == referral_id]


def changes_of(engine: Engine, referral_id: str) -> list[tuple[str, str, str | None, int]]:
    return [
        (c.from_status, c.to_status, c.reason_code, c.version)
        for c in staged(engine, ReferralStatusChanged)
        if c.referral_id == referral_id
    ]


def test_escalation_closes_the_silent_agencys_referral_and_its_access(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referrals = referrals_by_agency(router_engine, case_id)
    move(router_engine, ctx, referrals["nabari-jiritsu"].id, "accepted", by=as_agency("nabari-jiritsu"))
    office = referrals[OFFICE]
    assert read(router_engine, case_id, as_agency(OFFICE)) is not None, "engaged: it reads its part"
    assert office.deadline is not None

    with db.transaction(router_engine, RoutingBatch) as session:
        timers.fire_due_timers(session, ctx, now=office.deadline)

    closed = referrals_by_agency(router_engine, case_id)[OFFICE]
    assert (closed.status, closed.status_reason, closed.version) == ("cancelled", "superseded", 2)
    [to_lead] = replacing(router_engine, case_id, office.id)
    assert (to_lead.agency_id, to_lead.rule_id, to_lead.tags) == (LEAD, "escalation", [])
    with db.transaction(router_engine, RoutingBatch) as session:
        [step] = session.exec(select(ReferralTransition).where(ReferralTransition.referral_id == office.id)).all()
    assert (step.from_status, step.to_status, step.reason_code, step.changed_by) == (
        "requested",
        "cancelled",
        "superseded",
        timers.TIMER_ACTOR,
    )
    assert changes_of(router_engine, office.id) == [("requested", "cancelled", "superseded", 2)], "so intake ends it"
    assert [(e.kind, e.body["status"]) for e in feed_of(router_engine, OFFICE, case_id)][-1] == (
        "status_changed",
        "cancelled",
    )
    assert read(router_engine, case_id, as_agency(OFFICE)) is None, "its decision read is now a 404"
    with db.transaction(router_engine, RoutingBatch) as session:
        timers.fire_due_timers(session, ctx, now=office.deadline + timedelta(days=30))
    assert len(replacing(router_engine, case_id, office.id)) == 1, "a closed referral is never escalated again"


def test_each_change_of_a_referral_carries_its_next_version(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    office = referrals_by_agency(router_engine, case_id)[OFFICE]
    assert office.version == 1
    for to in ("accepted", "in_progress", "on_hold"):
        move(router_engine, ctx, office.id, to, by=as_agency(OFFICE))
    assert [version for *_, version in changes_of(router_engine, office.id)] == [2, 3, 4]
    assert referrals_by_agency(router_engine, case_id)[OFFICE].version == 4


def test_the_leads_last_open_referral_cannot_be_closed_by_anyone(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referrals = referrals_by_agency(router_engine, case_id)
    lead, operator = as_agency(LEAD), as_agency("operator", Scope.operator)
    move(router_engine, ctx, referrals[LEAD].id, "accepted", by=lead)
    move(router_engine, ctx, referrals[OFFICE].id, "cancelled", "duplicate", by=lead)
    move(router_engine, ctx, referrals["nabari-jiritsu"].id, "cancelled", "duplicate", by=lead)

    for by in (lead, operator):
        problem = refused(router_engine, ctx, referrals[LEAD].id, "cancelled", "duplicate", by=by)
        assert (status_of(problem), problem.code) == (409, "last-open-referral")
    problem = refused(router_engine, ctx, referrals[LEAD].id, "completed", "goals_met", by=lead)
    assert (status_of(problem), problem.code) == (409, "last-open-referral")
    move(router_engine, ctx, referrals[LEAD].id, "in_progress", by=lead)
    problem = refused(router_engine, ctx, referrals[LEAD].id, "failed", "no_contact", by=lead)
    assert (status_of(problem), problem.code) == (409, "last-open-referral")
    assert referrals_by_agency(router_engine, case_id)[LEAD].status == "in_progress", "nothing changed"


def test_the_lead_may_close_its_referral_while_another_stays_open(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referrals = referrals_by_agency(router_engine, case_id)
    move(router_engine, ctx, referrals[OFFICE].id, "cancelled", "duplicate", by=as_agency(LEAD))
    cancelled = move(router_engine, ctx, referrals[LEAD].id, "cancelled", "handed_over", by=as_agency(LEAD))
    assert cancelled.status == "cancelled", "nabari-jiritsu's referral is still open"


# The timer and the accept at the same moment.


def waiting_for_a_lock(engine: Engine) -> bool:
    """True once some session of this test's database waits for a row lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return True
        time.sleep(0.02)
    return False


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `work` in a thread; its result or its exception lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # reported by the test
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_an_accept_in_flight_makes_the_timer_wait_then_find_it_accepted(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    office = referrals_by_agency(router_engine, case_id)[OFFICE]
    assert office.deadline is not None
    accepting = RoutingBatch(router_engine, expire_on_commit=False)
    first = accepting.begin()
    referrals.transition(
        accepting, referral_id=office.id, body=TransitionCreate(to="accepted"), principal=as_agency(OFFICE), ctx=ctx
    )

    def fire() -> int:
        with db.transaction(router_engine, RoutingBatch) as session:
            return timers.fire_due_timers(session, ctx, now=office.deadline)

    timer, outcome = in_thread(fire)
    try:
        assert waiting_for_a_lock(router_engine), "the timer waits for the referral's row lock"
        assert timer.is_alive()
        first.commit()
    finally:
        accepting.close()
        timer.join(timeout=30)
    assert "error" not in outcome, outcome
    assert outcome["result"] > 0, "the timers fired (and found nothing to chase for this referral)"
    final = referrals_by_agency(router_engine, case_id)[OFFICE]
    assert (final.status, final.status_reason, final.version) == ("accepted", None, 2)
    assert replacing(router_engine, case_id, office.id) == [], "not escalated"
    assert changes_of(router_engine, office.id) == [("requested", "accepted", None, 2)], "exactly one outcome"


def test_a_firing_timer_makes_the_accept_wait_then_refuse_it_as_superseded(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    office = referrals_by_agency(router_engine, case_id)[OFFICE]
    assert office.deadline is not None
    firing = RoutingBatch(router_engine, expire_on_commit=False)
    first = firing.begin()
    timers.fire_due_timers(firing, ctx, now=office.deadline)

    accepter, outcome = in_thread(
        lambda: move(router_engine, ctx, office.id, "accepted", by=as_agency(OFFICE)),
    )
    try:
        assert waiting_for_a_lock(router_engine), "the accept waits for the referral's row lock"
        assert accepter.is_alive()
        first.commit()
    finally:
        firing.close()
        accepter.join(timeout=30)
    error = outcome.get("error")
    assert isinstance(error, DomainError), outcome
    assert (status_of(error), error.code) == (409, "illegal-transition")
    final = referrals_by_agency(router_engine, case_id)[OFFICE]
    assert (final.status, final.status_reason) == ("cancelled", "superseded")
    assert [r.agency_id for r in replacing(router_engine, case_id, office.id)] == [LEAD]
    assert changes_of(router_engine, office.id) == [("requested", "cancelled", "superseded", 2)], "exactly one outcome"
    with db.transaction(router_engine, RoutingBatch) as session:
        steps = session.exec(
            select(ReferralTransition.to_status)
            .where(ReferralTransition.referral_id == office.id)
            .order_by(col(ReferralTransition.id))
        ).all()
    assert steps == ["cancelled"]
