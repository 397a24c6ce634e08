"""Need-to-know, in-process on PostgreSQL: each agency is engaged for some of a household's tags and
learns only those; decisions are read by role; every release is a row of the disclosure ledger."""

from collections.abc import Sequence
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import col, select

from services.router import cases, decisions, feed, reads, referrals, rules
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.directories import store_directory
from services.router.models import FeedEntry, RouterOutbox, TransitionCreate
from shared import db
from shared.auth import Principal, Scope
from shared.consultation import Consultation
from shared.directory import demo_directory_path, load_directory
from shared.errors import DomainError
from shared.events import DisclosureRecorded, EventData, ReferralRequested, RoutingDecided, decode
from shared.problems import status_of
from tests.router.conftest import MUNICIPALITY, as_agency, referrals_by_agency, route

LEAD = "nabari-houkatsu"
# 地域03: the person suffers spousal violence (指針 第四: confidential, prefecture category → tier 3); a
# child is out of work and the household is poor. The welfare office and the prefecture's DV centre
# are engaged for the violence, the employment office for work, the 自立相談支援機関 for poverty.
DV, CHILD = ["domestic_violence"], ["employment", "poverty", "housing"]
FOR_DV = {"nabari-fukushi", "mie-dv"}
NOT_FOR_DV = {"hellowork-nabari", "nabari-jiritsu"}


def staged(engine: Engine, model: type[EventData]) -> list[Any]:
    """The events of `model` the router staged (no relay runs in these tests), in order."""
    with db.transaction(engine, RoutingBatch) as session:
        rows = session.exec(
            select(RouterOutbox).where(RouterOutbox.topic == model.topic).order_by(col(RouterOutbox.id))
        ).all()
    return [decode(row.payload.encode(), model).data for row in rows]


def ledger(engine: Engine, case_id: str) -> list[DisclosureRecorded]:
    return [row for row in staged(engine, DisclosureRecorded) if row.case_id == case_id]


def feed_of(engine: Engine, agency_id: str, case_id: str) -> list[FeedEntry]:
    with db.transaction(engine, RoutingBatch) as session:
        entries = feed.feed_entries(session, agency_id, after=0, limit=500)
    return [entry for entry in entries if entry.case_id == case_id]


def read(engine: Engine, case_id: str, reader: Principal, *, in_force_only: bool = True) -> Sequence[Any] | None:
    with db.transaction(engine, RoutingBatch) as session:
        return reads.read_decisions(session, case_id=case_id, principal=reader, in_force_only=in_force_only)


def test_a_partner_is_engaged_for_its_tags_and_the_owner_for_the_whole_picture() -> None:
    directory = load_directory(yaml.safe_load(demo_directory_path().read_text(encoding="utf-8")))
    household = [{"relation": "self", "issues": DV}, {"relation": "child", "issues": CHILD}]
    consultation = Consultation.model_validate({"area": "chiiki-03", "pathway": "self", "household": household})
    decision = rules.decide(consultation, directory, rules.RuleSet())
    assert {e.agency_id: e.tags for e in decision.engaged} == {
        LEAD: [],  # the lead (協働の中核) owns the case: every tag
        "nabari-fukushi": ["domestic_violence"],
        "mie-dv": ["domestic_violence"],
        "hellowork-nabari": ["employment"],
        "nabari-jiritsu": ["poverty", "housing"],  # engaged for two tags: both, merged
    }
    single = Consultation.model_validate(
        {"area": "chiiki-07", "pathway": "self", "household": [{"relation": "self", "issues": ["long_term_care"]}]}
    )
    [place] = rules.decide(single, directory, rules.RuleSet()).engaged
    assert (place.agency_id, place.tags) == ("hoken-07", []), "at tier 1 the tier-1 place owns the case"


def test_tags_go_onto_the_decision_the_referrals_and_their_events(router_engine: Engine, ctx: RouterContext) -> None:
    case_id = route(router_engine, ctx, "chiiki-03", DV, CHILD)
    referrals = referrals_by_agency(router_engine, case_id)
    assert {agency: r.tags for agency, r in referrals.items()} == {
        LEAD: [],
        "nabari-fukushi": ["domestic_violence"],
        "mie-dv": ["domestic_violence"],
        "hellowork-nabari": ["employment"],
        "nabari-jiritsu": ["poverty", "housing"],
    }
    assert {r.agency_id: r.tags for r in staged(router_engine, ReferralRequested)} == {
        agency: r.tags for agency, r in referrals.items()
    }
    [decided] = staged(router_engine, RoutingDecided)
    assert {e.agency_id: e.tags for e in decided.engaged} == {agency: r.tags for agency, r in referrals.items()}


def test_a_dv_tag_reaches_the_feeds_of_the_lead_and_of_the_agencies_engaged_for_it_only(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-03", DV, CHILD)
    issues = {agency: feed_of(router_engine, agency, case_id)[0].body["issues"] for agency in {LEAD} | FOR_DV}
    issues |= {agency: feed_of(router_engine, agency, case_id)[0].body["issues"] for agency in NOT_FOR_DV}
    assert issues == {
        LEAD: ["domestic_violence", "employment", "housing", "poverty"],
        "nabari-fukushi": ["domestic_violence"],
        "mie-dv": ["domestic_violence"],
        "hellowork-nabari": ["employment"],
        "nabari-jiritsu": ["housing", "poverty"],
    }


def test_a_rerouted_referral_keeps_the_rejected_ones_tags_and_the_lead_takes_over_with_all(
    router_engine: Engine, ctx: RouterContext
) -> None:
    """With a municipal ひきこもり NPO added: its rejection goes to the prefecture centre (same tags), whose
    rejection goes to the lead (the owner again, every tag)."""
    body = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    body["agencies"].append(
        {"id": "npo-hikikomori", "name": "NPO", "type": "hikikomori_support_center", "scope": "municipality"}
        | {"sector": "welfare"}
    )
    with db.transaction(router_engine, RoutingBatch) as session:
        store_directory(session, body, source="test", activate=True)
    case_id = route(router_engine, ctx, "chiiki-07", ["hikikomori"], ["employment"])

    def reject(agency_id: str) -> None:
        referral = referrals_by_agency(router_engine, case_id)[agency_id]
        with db.transaction(router_engine, RoutingBatch) as session:
            body = TransitionCreate(to="rejected", reason_code="no_capacity")
            referrals.transition(session, referral_id=referral.id, body=body, principal=as_agency(agency_id), ctx=ctx)

    reject("npo-hikikomori")
    prefecture = referrals_by_agency(router_engine, case_id)["mie-hikikomori"]
    assert (prefecture.rule_id, prefecture.tags) == ("reroute", ["hikikomori"])
    assert feed_of(router_engine, "mie-hikikomori", case_id)[0].body["issues"] == ["hikikomori"]
    reject("mie-hikikomori")
    with db.transaction(router_engine, RoutingBatch) as session:
        [taken_over] = [r for r in cases.referrals_of_case(session, case_id) if r.replaces_referral_id == prefecture.id]
    assert (taken_over.agency_id, taken_over.rule_id, taken_over.tags) == (LEAD, "reroute_to_lead", [])
    [requested] = [r for r in staged(router_engine, ReferralRequested) if r.referral_id == taken_over.id]
    assert requested.tags == []


def test_the_decision_is_read_whole_by_operators_and_the_lead_and_in_part_by_a_partner(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-03", DV, CHILD)
    for reader in (as_agency("operator", Scope.operator), as_agency(LEAD)):
        [whole] = read(router_engine, case_id, reader) or []
        assert whole.view == "full" and len(whole.engaged) == 5 and len(whole.patterns) == 3

    [partial] = read(router_engine, case_id, as_agency("hellowork-nabari")) or []
    assert partial.view == "partner"
    [own] = partial.engaged
    assert (own["agency_id"], own["tags"], own["reason"]) == (
        "hellowork-nabari",
        ["employment"],
        "tag employment → public_employment_office",
    )
    assert (partial.patterns, partial.excluded, partial.resource_gaps) == ([], [], [])
    assert "domestic_violence" not in partial.model_dump_json(), "neither the DV nor what engaged others"
    assert [d.view for d in read(router_engine, case_id, as_agency("mie-dv"), in_force_only=False) or []] == ["partner"]


def test_an_agency_with_no_part_reads_no_decision_and_its_refusal_is_recorded(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-03", DV, CHILD)
    # The board of education has no part; the area's tier-1 place was kept off the case (指針 第四).
    for stranger in (as_agency("nabari-kyoiku"), as_agency("hoken-03")):
        assert read(router_engine, case_id, stranger) is None
        assert read(router_engine, case_id, stranger, in_force_only=False) is None
    other_town = as_agency("operator", Scope.operator, municipalities=("999001",))
    assert read(router_engine, case_id, other_town) is None, "an operator of another municipality: no such case"
    refusals = [row for row in ledger(router_engine, case_id) if row.channel == "decision_read"]
    assert [(r.recipient, r.outcome, r.basis, r.basis_ref) for r in refusals] == [
        ("nabari-kyoiku", "refused", "none", None),
        ("nabari-kyoiku", "refused", "none", None),
        ("hoken-03", "refused", "none", None),
        ("hoken-03", "refused", "none", None),
        ("operator", "refused", "none", None),
    ]
    before = len(staged(router_engine, DisclosureRecorded))
    assert read(router_engine, "no-such-case", as_agency("nabari-kyoiku")) is None
    assert len(staged(router_engine, DisclosureRecorded)) == before, "no row for a case that does not exist"


def test_every_feed_entry_and_decision_read_is_a_ledger_row_with_its_basis(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-03", DV, CHILD)
    referrals = referrals_by_agency(router_engine, case_id)
    fed = [row for row in ledger(router_engine, case_id) if row.channel == "feed_entry"]
    assert sorted((r.recipient, r.basis, r.basis_ref, r.outcome) for r in fed) == sorted(
        (agency, "engagement", referral.id, "released") for agency, referral in referrals.items()
    ), "one row per feed entry, on the referral the household agreed to"
    assert all({"issues", "area", "tier", "case_id"} <= set(r.fields) for r in fed)

    read(router_engine, case_id, as_agency("operator", Scope.operator))
    read(router_engine, case_id, as_agency(LEAD))
    read(router_engine, case_id, as_agency("hellowork-nabari"), in_force_only=False)
    reads = [row for row in ledger(router_engine, case_id) if row.channel == "decision_read"]
    assert [(r.recipient, r.basis, r.basis_ref, r.outcome) for r in reads] == [
        ("operator", "operator", None, "released"),
        (LEAD, "engagement", referrals[LEAD].id, "released"),
        ("hellowork-nabari", "engagement", referrals["hellowork-nabari"].id, "released"),
    ]
    assert "patterns" in reads[1].fields and "patterns" not in reads[2].fields, "the fields released, by view"
    with db.transaction(router_engine, RoutingBatch) as session:
        entries = session.exec(select(FeedEntry).where(FeedEntry.case_id == case_id)).all()
    assert {e.municipality_code for e in entries} == {MUNICIPALITY}
    assert len(entries) == len(fed)


def test_an_agency_with_no_part_in_the_case_cannot_tell_it_exists_by_moving_or_escalating(
    router_engine: Engine, ctx: RouterContext
) -> None:
    case_id = route(router_engine, ctx, "chiiki-03", DV, CHILD)
    referral = referrals_by_agency(router_engine, case_id)["hellowork-nabari"]
    stranger = as_agency("nabari-kyoiku")
    with pytest.raises(DomainError) as moved, db.transaction(router_engine, RoutingBatch) as session:
        body = TransitionCreate(to="accepted")
        referrals.transition(session, referral_id=referral.id, body=body, principal=stranger, ctx=ctx)
    assert (status_of(moved.value), moved.value.code) == (404, "referral-not-found")
    with pytest.raises(DomainError) as escalated, db.transaction(router_engine, RoutingBatch) as session:
        decisions.escalate(session, case_id=case_id, kind="prefecture_support", principal=stranger, ctx=ctx)
    assert (status_of(escalated.value), escalated.value.code) == (404, "case-not-routed")
    with pytest.raises(DomainError) as partner, db.transaction(router_engine, RoutingBatch) as session:
        decisions.escalate(
            session, case_id=case_id, kind="prefecture_support", principal=as_agency("hellowork-nabari"), ctx=ctx
        )
    assert (status_of(partner.value), partner.value.code) == (403, "not-the-lead"), "a partner knows the case"
