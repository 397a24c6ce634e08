"""The referral lifecycle (FHIR Task states), in-process on PostgreSQL: every move, its record, its feed
entry and its event; refused moves; and re-routing to the lead when no agency of the type is left."""

import itertools
from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import col, select

from services.router import cases, feed, referrals, timers
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.directories import store_directory
from services.router.models import Referral, ReferralTransition, RouterOutbox, TransitionCreate
from shared import db
from shared.auth import Principal, Scope
from shared.directory import demo_directory_path
from shared.errors import DomainError
from shared.events import ReferralStatusChanged, decode
from shared.problems import status_of
from tests.router.conftest import as_agency, referrals_by_agency, route

LEAD = "nabari-houkatsu"
# 地域07: a household with 生活困窮 (poverty → the only independence_support_agency, nabari-jiritsu)
# and one with 就労 (employment → hellowork-nabari): tier 2, the lead plus those two.
POVERTY, EMPLOYMENT = ["poverty"], ["employment"]


def move(
    engine: Engine,
    ctx: RouterContext,
    referral_id: str,
    to: str,
    reason: str | None = None,
    *,
    by: Principal,
) -> Referral:
    with db.transaction(engine, RoutingBatch) as session:
        body = TransitionCreate.model_validate({"to": to, "reason_code": reason})
        return referrals.transition(session, referral_id=referral_id, body=body, principal=by, ctx=ctx)


def refused(
    engine: Engine, ctx: RouterContext, referral_id: str, to: str, reason: str | None = None, **kw: Any
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        move(engine, ctx, referral_id, to, reason, **kw)
    return caught.value


def replacing(engine: Engine, case_id: str, referral_id: str) -> list[Referral]:
    with db.transaction(engine, RoutingBatch) as session:
        return [r for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id == referral_id]


def history(engine: Engine, referral_id: str) -> list[tuple[str, str, str | None, str]]:
    with db.transaction(engine, RoutingBatch) as session:
        rows = session.exec(
            select(ReferralTransition)
            .where(ReferralTransition.referral_id == referral_id)
            .order_by(col(ReferralTransition.id))
        ).all()
        return [(r.from_status, r.to_status, r.reason_code, r.changed_by) for r in rows]


def published_status_changes(engine: Engine, referral_id: str) -> list[tuple[str, str, str | None]]:
    with db.transaction(engine, RoutingBatch) as session:
        rows = session.exec(
            select(RouterOutbox).where(RouterOutbox.topic == ReferralStatusChanged.topic).order_by(col(RouterOutbox.id))
        ).all()
    changes = [decode(r.payload.encode(), ReferralStatusChanged).data for r in rows]
    return [(c.from_status, c.to_status, c.reason_code) for c in changes if c.referral_id == referral_id]


def feed_statuses(engine: Engine, agency_id: str, referral_id: str) -> list[tuple[str, str]]:
    with db.transaction(engine, RoutingBatch) as session:
        entries = feed.feed_entries(session, agency_id, after=0, limit=500)
    return [(e.kind, e.body["status"]) for e in entries if e.referral_id == referral_id]


def test_a_referral_goes_through_work_and_watching_over_to_a_coded_close(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    office = as_agency("hellowork-nabari")
    steps = [("accepted", None), ("in_progress", None), ("on_hold", None), ("in_progress", None)]
    for to, reason in [*steps, ("completed", "goals_met")]:
        assert move(router_engine, ctx, referral.id, to, reason, by=office).status == to

    closed = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    assert (closed.status, closed.status_reason) == ("completed", "goals_met")
    path = ["requested", "accepted", "in_progress", "on_hold", "in_progress", "completed"]
    expected = [(a, b, "goals_met" if b == "completed" else None) for a, b in itertools.pairwise(path)]
    assert history(router_engine, referral.id) == [(*step, "hellowork-nabari") for step in expected]
    assert published_status_changes(router_engine, referral.id) == expected
    assert feed_statuses(router_engine, "hellowork-nabari", referral.id) == [
        ("referral_requested", "requested"),
        *(("status_changed", to) for to in path[1:]),
    ]
    problem = refused(router_engine, ctx, referral.id, "in_progress", by=office)
    assert (status_of(problem), problem.code) == (409, "illegal-transition"), "completed is final"


def test_a_referral_in_progress_can_fail_with_a_coded_reason(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    office = as_agency("hellowork-nabari")
    move(router_engine, ctx, referral.id, "accepted", by=office)
    move(router_engine, ctx, referral.id, "in_progress", by=office)
    failed = move(router_engine, ctx, referral.id, "failed", "no_contact", by=office)
    assert (failed.status, failed.status_reason) == ("failed", "no_contact")
    assert status_of(refused(router_engine, ctx, referral.id, "in_progress", by=office)) == 409


def test_the_lead_cancels_a_partners_referral_and_no_one_else_may(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    for outsider in (as_agency("hellowork-nabari"), as_agency("nabari-jiritsu")):
        problem = refused(router_engine, ctx, referral.id, "cancelled", "duplicate", by=outsider)
        assert (status_of(problem), problem.code) == (403, "not-the-lead")
    cancelled = move(router_engine, ctx, referral.id, "cancelled", "duplicate", by=as_agency(LEAD))
    assert (cancelled.status, cancelled.status_reason) == ("cancelled", "duplicate")
    assert history(router_engine, referral.id) == [("requested", "cancelled", "duplicate", LEAD)]
    assert feed_statuses(router_engine, "hellowork-nabari", referral.id)[-1] == ("status_changed", "cancelled")


@pytest.mark.parametrize(
    ("walk", "illegal"),
    [
        ([], "in_progress"),  # work starts only after acceptance
        ([], "on_hold"),
        ([], "completed"),
        (["accepted"], "received"),
        (["accepted", "in_progress"], "accepted"),
        (["accepted", "in_progress"], "rejected"),  # once accepted, it is closed, not rejected
    ],
)
def test_an_illegal_move_is_a_409_and_changes_nothing(
    router_engine: Engine, ctx: RouterContext, walk: list[str], illegal: str
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    office = as_agency("hellowork-nabari")
    for to in walk:
        move(router_engine, ctx, referral.id, to, by=office)
    reason = "no_capacity" if illegal == "rejected" else "goals_met" if illegal == "completed" else None
    problem = refused(router_engine, ctx, referral.id, illegal, reason, by=office)
    assert (status_of(problem), problem.code) == (409, "illegal-transition")
    assert illegal not in problem.extra["allowed"]
    assert referrals_by_agency(router_engine, case_id)["hellowork-nabari"].status == (walk or ["requested"])[-1]
    assert len(history(router_engine, referral.id)) == len(walk)


@pytest.mark.parametrize(("to", "reason"), [("completed", None), ("completed", "finished"), ("failed", None)])
def test_a_close_without_a_coded_reason_is_a_422(
    router_engine: Engine, ctx: RouterContext, to: str, reason: str | None
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    office = as_agency("hellowork-nabari")
    move(router_engine, ctx, referral.id, "accepted", by=office)
    move(router_engine, ctx, referral.id, "in_progress", by=office)
    problem = refused(router_engine, ctx, referral.id, to, reason, by=office)
    assert (status_of(problem), problem.code) == (422, "reason-required")
    [error] = problem.extra["errors"]
    assert error["field"] == "reason_code" and "goals_met" in error["message"]
    assert referrals_by_agency(router_engine, case_id)["hellowork-nabari"].status == "in_progress"


def test_a_cancel_without_a_coded_reason_is_a_422(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    problem = refused(router_engine, ctx, referral.id, "cancelled", by=as_agency(LEAD))
    assert (status_of(problem), problem.code) == (422, "reason-required")


def test_a_rejection_with_no_other_agency_of_the_type_goes_to_the_lead(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """名張市 has one independence_support_agency: when it declines, the lead (協働の中核) takes the referral."""
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    jiritsu = referrals_by_agency(router_engine, case_id)["nabari-jiritsu"]
    move(router_engine, ctx, jiritsu.id, "rejected", "no_capacity", by=as_agency("nabari-jiritsu"))

    with db.transaction(router_engine, RoutingBatch) as session:
        referrals = cases.referrals_of_case(session, case_id)
    [taken_over] = [r for r in referrals if r.replaces_referral_id == jiritsu.id]
    assert (taken_over.agency_id, taken_over.rule_id, taken_over.status) == (LEAD, "reroute_to_lead", "requested")
    assert taken_over.legal_basis.startswith("社会福祉法106条の3第1項第3号")
    assert taken_over.deadline is not None, "the lead's referral is chased like any other"
    assert [r.status for r in referrals if r.agency_id == "nabari-jiritsu"] == ["rejected"]
    assert ("referral_requested", "requested") in feed_statuses(router_engine, LEAD, taken_over.id)
    # The lead cannot pass it on by rejecting it in turn: the case would have no owner.
    problem = refused(router_engine, ctx, taken_over.id, "rejected", "no_capacity", by=as_agency(LEAD))
    assert status_of(problem) == 409


def test_rejections_go_to_the_next_agency_of_the_type_and_then_to_the_lead(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """With a municipal ひきこもり NPO added, it is asked first, then the prefecture centre, then the lead."""
    body = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    body["agencies"].append(
        {
            "id": "npo-hikikomori",
            "name": "NPO",
            "type": "hikikomori_support_center",
            "scope": "municipality",
            "sector": "welfare",
        }
    )
    with db.transaction(router_engine, RoutingBatch) as session:
        store_directory(session, body, source="test", activate=True)
    case_id = route(router_engine, ctx, "chiiki-07", ["hikikomori"], EMPLOYMENT)
    chain = [referrals_by_agency(router_engine, case_id)["npo-hikikomori"]]
    for reason in ("no_capacity", "not_in_service_area"):
        move(router_engine, ctx, chain[-1].id, "rejected", reason, by=as_agency(chain[-1].agency_id))
        with db.transaction(router_engine, RoutingBatch) as session:
            [following] = [
                r for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id == chain[-1].id
            ]
        chain.append(following)
    assert [(r.agency_id, r.rule_id) for r in chain] == [
        ("npo-hikikomori", "partner"),
        ("mie-hikikomori", "reroute"),
        (LEAD, "reroute_to_lead"),
    ]


def test_a_failed_referral_is_rerouted_like_a_rejected_one_and_at_the_end_goes_to_the_lead(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """An agency that took the case on and could not carry it (failed) hands it on as one that declined."""
    body = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    body["agencies"].append(
        {"id": "npo-hikikomori", "name": "NPO", "type": "hikikomori_support_center", "scope": "municipality",
         "sector": "welfare"}
    )  # fmt: skip
    with db.transaction(router_engine, RoutingBatch) as session:
        store_directory(session, body, source="test", activate=True)
    case_id = route(router_engine, ctx, "chiiki-07", ["hikikomori"], EMPLOYMENT)
    chain = [referrals_by_agency(router_engine, case_id)["npo-hikikomori"]]
    for _ in range(2):
        agency = as_agency(chain[-1].agency_id)
        for to in ("accepted", "in_progress"):
            move(router_engine, ctx, chain[-1].id, to, by=agency)
        move(router_engine, ctx, chain[-1].id, "failed", "no_contact", by=agency)
        with db.transaction(router_engine, RoutingBatch) as session:
            [following] = [
                r for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id == chain[-1].id
            ]
        chain.append(following)
    assert [(r.agency_id, r.rule_id, r.tags) for r in chain] == [
        ("npo-hikikomori", "partner", ["hikikomori"]),
        ("mie-hikikomori", "reroute", ["hikikomori"]),
        (LEAD, "reroute_to_lead", []),
    ]
    assert [history(router_engine, r.id)[-1][:3] for r in chain[:2]] == [("in_progress", "failed", "no_contact")] * 2


def test_the_leads_own_failed_referral_is_not_handed_on(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    lead_referral = referrals_by_agency(router_engine, case_id)[LEAD]
    for to in ("accepted", "in_progress"):
        move(router_engine, ctx, lead_referral.id, to, by=as_agency(LEAD))
    move(router_engine, ctx, lead_referral.id, "failed", "no_contact", by=as_agency(LEAD))
    assert replacing(router_engine, case_id, lead_referral.id) == [], "the lead's type holds no other lead"


def test_only_the_addressed_agency_moves_a_referral(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    for other in (as_agency(LEAD), as_agency("operator", Scope.operator)):
        problem = refused(router_engine, ctx, referral.id, "accepted", by=other)
        assert (status_of(problem), problem.code) == (403, "not-your-referral")


def test_an_unanswered_referral_is_escalated_to_the_lead_which_cannot_reject_it(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY, EMPLOYMENT)
    office = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    move(
        router_engine,
        ctx,
        referrals_by_agency(router_engine, case_id)["nabari-jiritsu"].id,
        "accepted",
        by=as_agency("nabari-jiritsu"),
    )
    assert office.deadline is not None
    with db.transaction(router_engine, RoutingBatch) as session:
        assert timers.fire_due_timers(session, ctx, now=office.deadline - timedelta(seconds=1)) > 0  # reminders
    with db.transaction(router_engine, RoutingBatch) as session:
        assert [r.rule_id for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id] == []
        timers.fire_due_timers(session, ctx, now=office.deadline)
    with db.transaction(router_engine, RoutingBatch) as session:
        [escalated] = [r for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id == office.id]
    assert (escalated.agency_id, escalated.rule_id) == (LEAD, "escalation"), "only the unanswered partner is chased"
    problem = refused(router_engine, ctx, escalated.id, "rejected", "no_capacity", by=as_agency(LEAD))
    assert (status_of(problem), problem.code) == (409, "lead-cannot-reject")
