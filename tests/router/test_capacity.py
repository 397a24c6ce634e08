"""Capacity-aware routing [LOCAL, off by default]: with it on, an agency holding as many live referrals as
its directory capacity is passed over for the next eligible one of its type, the decision says why and
reports a resource gap; with it off, every decision is what it was without capacities."""

from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from services.router import cases, rules
from services.router.batch import RoutingBatch
from services.router.context import RouterContext
from services.router.deadlines import Clock
from services.router.directories import ConfigCache, parse_config, store_directory
from services.router.scenarios import parse_scenario_file
from shared import db
from shared.directory import demo_directory_path, load_directory
from shared.events import RoutingDecided
from tests.router.conftest import as_agency, referrals_by_agency, route
from tests.router.scenario_files import NABARI
from tests.router.test_need_to_know import staged
from tests.router.test_referral_life import move

LEAD = "nabari-houkatsu"
JIRITSU, SECOND = "nabari-jiritsu", "nabari-jiritsu-2"
# 地域07, tier 2 (two members with issues): the lead, and the 自立相談支援機関 for poverty.
POVERTY, HEALTH = ["poverty"], ["health"]
GAP = "capacity:independence_support_agency"


def body_with(*, capacity_routing: bool, capacities: dict[str, int]) -> dict[str, Any]:
    """The demo directory with a second 自立相談支援機関, some capacities, and capacity routing on or off."""
    body: dict[str, Any] = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    body["agencies"].append(
        {
            "id": SECOND,
            "name": "名張市生活支援相談センター 分室",
            "type": "independence_support_agency",
            "scope": "municipality",
            "sector": "welfare",
        }
    )
    for agency in body["agencies"]:
        if agency["id"] in capacities:
            agency["capacity"] = capacities[agency["id"]]
    body["capacity_routing"] = capacity_routing
    return body


def use(engine: Engine, body: dict[str, Any]) -> RouterContext:
    with db.transaction(engine, RoutingBatch) as session:
        store_directory(session, body, source="test", activate=True)
    return RouterContext(configs=ConfigCache(), clock=Clock())


def decision_of(engine: Engine, case_id: str) -> Any:
    with db.transaction(engine, RoutingBatch) as session:
        decision = cases.latest_decision(session, case_id)
    assert decision is not None
    return decision


def test_a_full_agency_is_passed_over_for_the_next_of_its_type_and_the_decision_says_why(
    router_engine: Engine,
) -> None:
    ctx = use(router_engine, body_with(capacity_routing=True, capacities={JIRITSU: 2}))
    held = [route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH) for _ in range(2)]
    assert all(JIRITSU in referrals_by_agency(router_engine, case_id) for case_id in held)

    third = route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH)
    assert JIRITSU not in referrals_by_agency(router_engine, third)
    assert referrals_by_agency(router_engine, third)[SECOND].tags == ["poverty"]
    decision = decision_of(router_engine, third)
    [passed] = [e for e in decision.excluded if e["agency_id"] == JIRITSU]
    assert (passed["rule_id"], passed["reason"].split(":")[0]) == ("capacity", "at capacity 2/2")
    assert {"partner_type": GAP, "tags": ["poverty"]} in decision.resource_gaps
    [event] = [e for e in staged(router_engine, RoutingDecided) if e.case_id == third]
    assert GAP in event.resource_gaps, "the resource-gap indicator counts the pass"

    # A referral that ends frees a place.
    move(router_engine, ctx, referrals_by_agency(router_engine, held[0])[JIRITSU].id, "cancelled", "duplicate",
         by=as_agency(LEAD))  # fmt: skip
    fourth = route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH)
    assert JIRITSU in referrals_by_agency(router_engine, fourth)
    assert GAP not in [g["partner_type"] for g in decision_of(router_engine, fourth).resource_gaps]


def test_when_every_agency_of_a_type_is_full_none_is_engaged_and_a_rerouted_referral_skips_full_ones(
    router_engine: Engine,
) -> None:
    ctx = use(router_engine, body_with(capacity_routing=True, capacities={JIRITSU: 1, SECOND: 1}))
    first = route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH)
    second = route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH)
    assert JIRITSU in referrals_by_agency(router_engine, first) and SECOND in referrals_by_agency(router_engine, second)

    full = route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH)
    assert not {JIRITSU, SECOND} & set(referrals_by_agency(router_engine, full)), "the lead coordinates meanwhile"
    decision = decision_of(router_engine, full)
    assert {e["agency_id"] for e in decision.excluded if e["rule_id"] == "capacity"} == {JIRITSU, SECOND}
    assert {"partner_type": GAP, "tags": ["poverty"]} in decision.resource_gaps

    # The first's agency rejects: the only other one is full, so the lead takes the referral over.
    rejected = referrals_by_agency(router_engine, first)[JIRITSU]
    move(router_engine, ctx, rejected.id, "rejected", "no_capacity", by=as_agency(JIRITSU))
    taken = referrals_by_agency(router_engine, first)
    assert [r.agency_id for r in taken.values() if r.replaces_referral_id == rejected.id] == [LEAD]


def test_a_full_tier1_place_is_passed_over_for_the_general_window(router_engine: Engine) -> None:
    ctx = use(router_engine, body_with(capacity_routing=True, capacities={"hoken-07": 0}))
    case_id = route(router_engine, ctx, "chiiki-07", POVERTY)
    assert set(referrals_by_agency(router_engine, case_id)) == {LEAD}  # the general window
    decision = decision_of(router_engine, case_id)
    assert [e["reason"] for e in decision.excluded] == ["at capacity 0/0: passed over as tier-1 place"]
    assert decision.resource_gaps == [{"partner_type": "capacity:community_comprehensive_support_center", "tags": []}]


def test_with_capacity_routing_off_capacities_change_no_decision(router_engine: Engine) -> None:
    ctx = use(router_engine, body_with(capacity_routing=False, capacities={JIRITSU: 0, "hoken-07": 0}))
    assert JIRITSU in referrals_by_agency(router_engine, route(router_engine, ctx, "chiiki-07", POVERTY, HEALTH))
    assert "hoken-07" in referrals_by_agency(router_engine, route(router_engine, ctx, "chiiki-07", POVERTY))


@pytest.fixture(scope="module")
def scenario_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(NABARI.read_text(encoding="utf-8"))
    return data


def test_every_scenario_decides_the_same_with_capacities_given_and_routing_off(scenario_file: dict[str, Any]) -> None:
    """The scenario file's directory with every agency full: off, the load is not even looked at."""
    loaded = parse_scenario_file(scenario_file)
    full_body = {**scenario_file, "agencies": [{**a, "capacity": 0} for a in scenario_file["agencies"]]}
    full = load_directory(full_body)
    everyone = {agency.id: 10 for agency in full.agencies}
    assert loaded.scenarios
    for scenario in loaded.scenarios:
        plain = rules.decide(scenario.consultation, loaded.directory, loaded.rules)
        crowded = rules.decide(scenario.consultation, full, loaded.rules, load=everyone)
        assert crowded.model_dump(exclude={"directory_version"}) == plain.model_dump(exclude={"directory_version"})
    on = parse_config({**full_body, "capacity_routing": True}).rules
    assert any(
        rules.decide(s.consultation, full, on, load=everyone).engaged_ids
        != rules.decide(s.consultation, full, loaded.rules).engaged_ids
        for s in loaded.scenarios
    ), "turned on, the same load changes decisions: the comparison above could fail"
