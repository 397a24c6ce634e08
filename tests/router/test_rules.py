"""The directory and the routing rules, exercised in-process on small hand-built municipalities."""

import copy
import random
import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.router import rules as routing
from services.router.directories import parse_config
from services.router.rules import DEFAULT_TAG_PARTNERS, RuleSet, UnknownArea, decide
from shared.consultation import Consultation
from shared.directory import (
    DirectoryError,
    UnknownAgency,
    demo_directory_path,
    load_directory,
    load_directory_file,
)
from shared.vocabulary import IssueTag
from tests.router.scenario_files import NABARI


def _agency(agency_id: str, agency_type: str, scope: str = "municipality", **extra: Any) -> dict[str, Any]:
    return {"id": agency_id, "name": agency_id, "type": agency_type, "scope": scope, "sector": "welfare", **extra}


def _town() -> dict[str, Any]:
    """A town with two districts; the north has a tier-1 place, the south has none."""
    return {
        "municipality": {
            "code": "999002",
            "name": "テスト町",
            "prefecture": {"code": "990001", "name": "架空県"},
            "lead": "lead-office",
            "general_window": "window",
            "areas": [
                {"id": "north", "name": "北地区", "kind": "district"},
                {"id": "south", "name": "南地区", "kind": "district"},
                {"id": "north-1", "name": "北1", "kind": "elementary_school_district", "parent": "north"},
                {"id": "south-1", "name": "南1", "kind": "elementary_school_district", "parent": "south"},
            ],
        },
        "agencies": [
            _agency("lead-office", "independence_support_agency"),
            _agency("window", "general_consultation_window"),
            _agency(
                "place-north", "community_comprehensive_support_center", "area", roles=["tier1_place"], areas=["north"]
            ),
            _agency("houkatsu-main", "community_comprehensive_support_center"),
            _agency("shakyo", "social_welfare_council"),
            _agency("z-hub", "child_rearing_support_hub", "area", areas=["north-1"]),
            _agency("a-hub", "child_rearing_support_hub", "area", areas=["north-1"]),
            _agency("pref-hub", "child_rearing_support_hub", "prefecture"),
            _agency("pref-dv", "spousal_violence_support_center", "prefecture"),
            _agency("welfare-office", "welfare_office"),
        ],
    }


def _consultation(area: str, *members: list[str], **flags: Any) -> Consultation:
    household = [{"relation": "self" if i == 0 else "other", "issues": issues} for i, issues in enumerate(members)]
    return Consultation.model_validate({"area": area, "pathway": "self", "household": household, **flags})


def _decide(consultation: Consultation, rules: RuleSet | None = None, data: dict[str, Any] | None = None) -> Any:
    return decide(consultation, load_directory(data or _town()), rules or RuleSet.default())


# Directory


def test_ancestors_start_with_the_area_itself() -> None:
    directory = load_directory(_town())
    assert [area.id for area in directory.ancestors("north-1")] == ["north-1", "north"]
    assert [area.id for area in directory.ancestors("south")] == ["south"]
    with pytest.raises(UnknownArea, match="'east'"):
        directory.ancestors("east")


def test_agency_lookups() -> None:
    directory = load_directory(_town())
    assert directory.agency("shakyo").type == "social_welfare_council"
    assert [a.id for a in directory.agencies_of_type("child_rearing_support_hub")] == ["a-hub", "pref-hub", "z-hub"]
    with pytest.raises(UnknownAgency):
        directory.agency("nobody")


def test_version_is_a_short_content_hash() -> None:
    data = _town()
    version = load_directory(data).version
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    spelled_out = copy.deepcopy(data)
    spelled_out["agencies"][0].update(roles=[], areas=[], contact={})
    random.Random(7).shuffle(spelled_out["agencies"])
    assert load_directory(spelled_out).version == version
    # The version covers the whole body the router publishes: a change to the rules alone is a new one.
    ruled = copy.deepcopy(data)
    ruled["routing"] = {"acceptance_hours": 48}
    assert load_directory(ruled).version != version
    changed = copy.deepcopy(data)
    changed["agencies"][4]["name"] = "改称した社協"
    assert load_directory(changed).version != version


def _break(path: str, value: Any) -> dict[str, Any]:
    data = _town()
    target: Any = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if last == "+":
        target.append(value)
    elif value is None:
        del target[last]
    else:
        target[last] = value
    return data


INVALID = {
    "unknown parent": (_break("municipality.areas.2.parent", "west"), "area 'north-1' has unknown parent 'west'"),
    "unknown served area": (_break("agencies.2.areas", ["east"]), "agency 'place-north' serves unknown area 'east'"),
    "lead missing": (_break("municipality.lead", "ghost"), "municipality lead 'ghost' is not among the agencies"),
    "window missing": (
        _break("municipality.general_window", "ghost"),
        "municipality general_window 'ghost' is not among the agencies",
    ),
    "duplicate agency": (_break("agencies.+", _agency("shakyo", "social_welfare_council")), "duplicate agency id"),
    "duplicate area": (
        _break("municipality.areas.+", {"id": "north", "name": "x", "kind": "district"}),
        "duplicate area id 'north'",
    ),
    "parent cycle": (_break("municipality.areas.0.parent", "north-1"), "parent cycle"),
    "area scope without areas": (_break("agencies.5.areas", []), "agency 'z-hub' has scope area but lists no areas"),
    "bad scope": (_break("agencies.4.scope", "planet"), "invalid agencies[4].scope"),
    "no agencies": (_break("agencies", None), "lacks agencies"),
}


@pytest.mark.parametrize(("data", "message"), INVALID.values(), ids=INVALID.keys())
def test_an_inconsistent_directory_is_rejected_with_a_clear_message(data: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError, match=re.escape(message)):
        load_directory(data)


def test_demo_directory_loads() -> None:
    directory = load_directory_file(demo_directory_path())
    assert directory.municipality.name == "名張市"
    assert directory.agency(directory.municipality.lead).id == "nabari-houkatsu"


def test_demo_directory_is_the_nabari_directory() -> None:
    demo = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    nabari = yaml.safe_load(NABARI.read_text(encoding="utf-8"))
    # The scenario file predates the 2020 amendment's programme setting, which routes nothing.
    nabari["municipality"]["jusoteki_since_fiscal_year"] = demo["municipality"]["jusoteki_since_fiscal_year"]
    assert load_directory(demo).model_dump(exclude={"version"}) == load_directory(nabari).model_dump(
        exclude={"version"}
    )
    assert demo["tag_partners"] == nabari["tag_partners"]


# Rules


def test_default_rules_are_the_scenario_files_rules() -> None:
    nabari = yaml.safe_load(NABARI.read_text(encoding="utf-8"))
    assert nabari["tag_partners"] == {tag: list(types) for tag, types in DEFAULT_TAG_PARTNERS.items()}
    assert RuleSet.from_mapping(nabari) == RuleSet.default()


def test_defaults_cover_every_issue_tag() -> None:
    assert set(RuleSet.default().tag_partners) == {tag.value for tag in IssueTag}
    assert RuleSet.from_mapping({}) == RuleSet.default()


def test_tag_partners_override_is_per_tag() -> None:
    rules = RuleSet.from_mapping({"tag_partners": {"poverty": ["social_welfare_council"]}, "agencies": []})
    assert rules.tag_partners["poverty"] == ["social_welfare_council"]
    assert rules.tag_partners["housing"] == ["independence_support_agency"]


def test_a_misspelt_rule_is_rejected() -> None:
    with pytest.raises(ValidationError, match="povrty"):
        RuleSet.from_mapping({"tag_partners": {"povrty": []}})
    with pytest.raises(ValidationError):
        RuleSet.from_mapping({"multiple_members_threshold": 0})


def test_an_unknown_area_is_refused() -> None:
    with pytest.raises(UnknownArea):
        _decide(_consultation("east", ["poverty"]))


def test_tier_1_goes_to_the_nearest_place_else_the_general_window() -> None:
    north = _decide(_consultation("north-1", ["social_isolation"]))
    assert (north.tier, north.lead, north.engaged_ids) == (1, None, ["place-north"])
    assert north.engaged[0].rule_id == "tier1_place"
    south = _decide(_consultation("south-1", ["social_isolation"]))
    assert (south.tier, south.lead, south.engaged_ids) == (1, None, ["window"])
    assert south.engaged[0].rule_id == "general_window"


def test_every_pattern_carries_its_basis_and_reason() -> None:
    decision = _decide(
        _consultation(
            "south-1", ["cancer", "employment"], ["childcare"], existing_services_fit=False, backup_requested=True
        )
    )
    assert decision.tier == 3
    assert [(p.id, p.legal_basis) for p in decision.patterns] == [
        (rule.id, rule.legal_basis)  # each basis checked against the seed in test_citations.py
        for rule in (
            routing.PREFECTURE_CATEGORY,
            routing.MULTIPLE_MEMBERS,
            routing.MULTIPLE_ISSUES,
            routing.GAP_BETWEEN_SYSTEMS,
            routing.BACKUP_REQUESTED,
        )
    ]
    assert decision.patterns[0].reason == "self: cancer"
    assert decision.patterns[2].reason == "self: cancer, employment"


def test_thresholds_are_local_settings() -> None:
    two_members = _consultation("north-1", ["poverty"], ["childcare"])
    assert _decide(two_members).pattern_ids == ["multiple_members"]
    strict = RuleSet.from_mapping({"multiple_members_threshold": 3})
    decision = _decide(two_members, strict)
    assert (decision.tier, decision.pattern_ids) == (1, [])


def test_engaged_lists_lead_first_and_each_agency_once() -> None:
    decision = _decide(_consultation("south-1", ["poverty", "housing"], ["long_term_care"]))
    assert decision.lead == "lead-office"
    assert decision.engaged_ids == ["lead-office", "houkatsu-main"]
    lead = decision.engaged[0]
    assert (lead.rule_id, lead.legal_basis) == ("lead", routing.LEAD.legal_basis)
    assert lead.reason == (
        "協働の中核 of テスト町; tag poverty → independence_support_agency; tag housing → independence_support_agency"
    )
    partner = decision.engaged[1]
    assert (partner.rule_id, partner.legal_basis, partner.reason) == (
        "partner",
        routing.PARTNER.legal_basis,
        "tag long_term_care → community_comprehensive_support_center",
    )


def test_nearest_level_wins_and_ties_go_to_the_smallest_id() -> None:
    north = _decide(_consultation("north-1", ["childcare"], ["poverty"]))
    assert "a-hub" in north.engaged_ids
    assert not {"z-hub", "pref-hub"} & set(north.engaged_ids)
    south = _decide(_consultation("south-1", ["childcare"], ["poverty"]))
    assert "pref-hub" in south.engaged_ids


def test_a_missing_partner_type_is_a_resource_gap() -> None:
    decision = _decide(_consultation("north-1", ["childcare", "legal"]))
    assert [(gap.partner_type, gap.tags) for gap in decision.resource_gaps] == [
        ("nursery", ["childcare"]),
        ("legal_support_center", ["legal"]),
    ]


def test_a_confidential_tag_excludes_tier1_places_even_as_partners() -> None:
    decision = _decide(_consultation("north-1", ["domestic_violence"], ["long_term_care"]))
    assert decision.tier == 3
    assert decision.engaged_ids == ["lead-office", "welfare-office", "pref-dv", "houkatsu-main"]
    assert [(e.agency_id, e.rule_id, e.legal_basis) for e in decision.excluded] == [
        ("place-north", "confidential_exclusion", routing.CONFIDENTIAL_EXCLUSION.legal_basis)
    ]


def test_a_confidential_tier_1_case_falls_back_to_the_general_window() -> None:
    rules = RuleSet.from_mapping({"confidential_tags": ["social_isolation"]})
    decision = _decide(_consultation("north-1", ["social_isolation"]), rules)
    assert (decision.tier, decision.engaged_ids) == (1, ["window"])
    assert [e.agency_id for e in decision.excluded] == ["place-north"]


def test_a_lead_that_is_a_tier1_place_is_refused() -> None:
    """Such a lead could not take a confidential case (released_prisoner here): the case would have no owner."""
    data = _town()
    data["municipality"]["lead"] = "place-north"
    with pytest.raises(DirectoryError, match="municipality lead 'place-north' has role tier1_place") as refused:
        load_directory(data)
    assert refused.value.field == "municipality.lead"


def test_a_tier1_place_general_window_is_refused_only_when_a_confidential_case_can_stay_at_tier_1() -> None:
    data = _town()
    data["municipality"]["general_window"] = "place-north"
    # Default rules: every confidential tag is a prefecture category, so such a case is never tier 1.
    assert parse_config(data).directory.municipality.general_window == "place-north"
    # A town that keeps social isolation confidential without making it a pattern would orphan that case.
    local = {**data, "confidential_tags": ["domestic_violence", "social_isolation"]}
    decision = decide(
        _consultation("north-1", ["social_isolation"]), load_directory(local), RuleSet.from_mapping(local)
    )
    assert decision.engaged == [], "the premise: this directory really leaves the case without an owner"
    with pytest.raises(DirectoryError, match="only the confidential tag social_isolation stays at tier 1") as refused:
        parse_config(local)
    assert refused.value.field == "municipality.general_window"
    # Made a gap tag too, the case goes to tier 2 and the lead: the same window is fine again.
    assert parse_config({**local, "gap_tags": ["social_isolation"]}).rules.confidential_tags


@pytest.mark.parametrize(
    "hours", ["平日 8:30-17:15", "mon-fri 8:30", "mon-fri 17:15-08:30", "weekdays 08:30-17:15", " ; "]
)
def test_unreadable_business_hours_are_refused_naming_the_agency_and_the_field(hours: str) -> None:
    data = _town()
    data["agencies"][3]["business_hours"] = hours
    with pytest.raises(DirectoryError, match=re.escape("agency 'houkatsu-main' has unreadable business_hours")) as e:
        load_directory(data)
    assert e.value.field == "agencies.houkatsu-main.business_hours"


def test_business_hours_the_slot_finder_reads_are_accepted() -> None:
    data = _town()
    data["agencies"][3]["business_hours"] = "mon-fri 08:30-12:00,13:00-17:15; sat 09:00-12:00"
    assert load_directory(data).agency("houkatsu-main").business_hours is not None


def test_the_shared_directories_still_load() -> None:
    """The shipped demo directory and every vendored scenario file pass the stricter checks."""
    files = [demo_directory_path(), *sorted(NABARI.parent.glob("*.yaml"))]
    for path in files:
        parse_config(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert NABARI in files


def test_the_same_input_gives_the_same_decision() -> None:
    consultation = _consultation("north-1", ["domestic_violence", "childcare"], ["long_term_care", "legal"])
    first = _decide(consultation)
    assert _decide(Consultation.model_validate(consultation.model_dump())) == first
    shuffled = _town()
    random.Random(3).shuffle(shuffled["agencies"])
    random.Random(3).shuffle(shuffled["municipality"]["areas"])
    assert _decide(consultation, data=shuffled) == first
    assert first.directory_version == load_directory(_town()).version


def test_a_decision_is_frozen() -> None:
    decision = _decide(_consultation("north-1", ["poverty"]))
    with pytest.raises(ValidationError):
        setattr(decision, "tier", 2)  # noqa: B010
