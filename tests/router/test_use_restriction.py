"""利用停止 at the router, in process: a case under it gets no new feed entry and shows none, whatever order
intake's UseRestrictionChanged and the case's own events arrive in; a lift of a stop no longer in force
(late, or delivered again) changes nothing. The whole path through the services is
tests/e2e/test_use_restriction.py."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine

from services.router import decisions, feed, restriction
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from shared import db
from shared.consultation import ConsultationSummary
from shared.events import ConsultationReceived, UseRestrictionChanged, new_event
from tests.router.conftest import MUNICIPALITY, referrals_by_agency, route

LEAD = "nabari-houkatsu"


def change(engine: Engine, ctx: RouterContext, case_id: str, *, restricted: bool, request_id: str) -> None:
    data = UseRestrictionChanged(
        case_id=case_id, restricted=restricted, request_id=request_id, changed_at=datetime.now(UTC)
    )
    envelope = new_event(data, source="/marugoto/intake", subject=case_id, municipality_code=MUNICIPALITY)
    with db.transaction(engine, RoutingBatch) as session:
        restriction.use_restriction_changed(session, envelope, ctx=ctx)


def kinds(engine: Engine, agency_id: str, case_id: str) -> list[str]:
    with db.transaction(engine, RoutingBatch) as session:
        return [e.kind for e in feed.feed_entries(session, agency_id, after=0, limit=500) if e.case_id == case_id]


def test_a_stop_hides_the_case_tells_the_lead_and_its_lift_brings_it_back(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-01", ["long_term_care"], ["hikikomori", "employment"])
    partners = [a for a in referrals_by_agency(router_engine, case_id) if a != LEAD]
    assert partners and kinds(router_engine, partners[0], case_id) == ["referral_requested"]

    change(router_engine, ctx, case_id, restricted=True, request_id="r1")
    assert kinds(router_engine, partners[0], case_id) == []
    assert kinds(router_engine, LEAD, case_id) == ["use_restricted"]

    # A lift of another request (not the stop in force) changes nothing; a repeated stop adds nothing.
    change(router_engine, ctx, case_id, restricted=False, request_id="r0")
    change(router_engine, ctx, case_id, restricted=True, request_id="r1")
    assert kinds(router_engine, partners[0], case_id) == []
    assert kinds(router_engine, LEAD, case_id) == ["use_restricted"]

    change(router_engine, ctx, case_id, restricted=False, request_id="r1")
    assert kinds(router_engine, partners[0], case_id) == ["referral_requested", "use_restriction_lifted"]
    assert kinds(router_engine, LEAD, case_id)[-1] == "use_restriction_lifted"


def test_a_stop_that_arrives_before_the_consultation_keeps_the_case_off_every_feed(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """The two come on different topics: intake's stop may be applied before the router routes the case."""
    case_id = str(uuid.uuid4())
    change(router_engine, ctx, case_id, restricted=True, request_id="early")
    household = [{"relation": "self", "issues": ["long_term_care"]}, {"relation": "child", "issues": ["hikikomori"]}]
    summary = ConsultationSummary.model_validate({"area": "chiiki-01", "pathway": "self", "household": household})
    data = ConsultationReceived(
        case_id=case_id, consultation_id=case_id, submitted_by="t", received_at=datetime.now(UTC), consultation=summary
    )
    with db.transaction(router_engine, RoutingBatch) as session:
        decisions.route(session, new_event(data, source="/t", subject=case_id, municipality_code=MUNICIPALITY), ctx=ctx)
    agencies = list(referrals_by_agency(router_engine, case_id))
    assert LEAD in agencies and len(agencies) > 1
    assert all(kinds(router_engine, agency, case_id) == [] for agency in agencies)

    change(router_engine, ctx, case_id, restricted=False, request_id="early")
    assert all(kinds(router_engine, agency, case_id) == ["use_restriction_lifted"] for agency in agencies)
