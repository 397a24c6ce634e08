"""Property-based tests of the routing rules over random households AND random directories.

Every example builds a fresh municipality through load_directory (so it is validated like a real
file): a random area tree, a lead and a general window among the agencies, and agencies of the
partner types of the default rules with random scopes, served areas, roles and sectors. The
expectations are the DEFAULT RULES comment of shared/scenarios/routing-nabari.yaml, restated here
independently of services/router/rules.py wherever that is cheap (patterns, nearest agency, gaps).
"""

import itertools
import random
import re
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.router.directories import parse_config
from services.router.rules import Decision, RuleSet, decide
from shared.consultation import Consultation, HouseholdMember
from shared.directory import Agency, Directory, DirectoryError, load_directory
from shared.vocabulary import IssueTag, Pathway, Relation

RULES = RuleSet.default()
TIER1_PLACE = "tier1_place"
# Spelled out from the scenario file rather than read from RULES, so a RuleSet that lost its
# confidential tags makes the confidentiality property fail instead of silently agreeing with it.
CONFIDENTIAL = frozenset({IssueTag.domestic_violence, IssueTag.released_prisoner})
PARTNER_TYPES = sorted(
    {partner for partners in RULES.tag_partners.values() for partner in partners}
    | {"community_comprehensive_support_center"}
)
SCOPES = ("area", "municipality", "prefecture")

# database=None: nothing is written to .hypothesis/ (and no stale example replays on another checkout).
PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Ids from a small pool of short names, in an order unrelated to how they sort: ties broken by
# "smallest id" are then exercised on ids that do not sort like their position in the file.
_SHORT_IDS = [first + rest for first in "abxz09-" for rest in ["", *"abxz09-"]]
ID_POOL = random.Random(106).sample(_SHORT_IDS, k=len(_SHORT_IDS))
# A directory draws its agency types from a palette of 1-8 partner types, so that several agencies
# of one type compete (nearest level, smallest id) far more often than with all 21 to spread over.
PALETTE = st.lists(st.sampled_from(PARTNER_TYPES), min_size=1, max_size=8, unique=True)
# Crowded: 1-3 types only, for the properties about which of several candidates wins.
CROWDED_PALETTE = st.lists(st.sampled_from(PARTNER_TYPES), min_size=1, max_size=3, unique=True)
MAX_AREAS, MAX_AGENCIES = 12, 25
# SERVED[n]: every set of 1-3 of n areas (as positions), for an area-scoped agency to serve.
SERVED = {
    n: [subset for size in (1, 2, 3) for subset in itertools.combinations(range(n), size)]
    for n in range(1, MAX_AREAS + 1)
}
# Type (a palette slot), scope, sector, roles and served areas (an index into SERVED[n]) of one
# agency as ONE choice: generation is what this file spends its time on, and Hypothesis pays per
# choice. Shrinks towards the first of each.
AGENCY_TRAITS = st.sampled_from(
    list(
        itertools.product(
            range(8),
            SCOPES,
            ["welfare", "non_welfare"],
            [(), (TIER1_PLACE,), ("outreach",), ("outreach", TIER1_PLACE)],
            range(len(SERVED[MAX_AREAS])),
        )
    )
)
AGENCY_COUNT = st.integers(min_value=1, max_value=MAX_AGENCIES)
PARENTS = st.lists(st.integers(min_value=-1, max_value=MAX_AREAS - 2), min_size=1, max_size=MAX_AREAS)
ROTATION = st.integers(min_value=0, max_value=len(ID_POOL) - 1)
# Lead and general window as positions among the agencies (taken modulo their number).
LEAD_AND_WINDOW = st.sampled_from(list(itertools.product(range(MAX_AGENCIES), repeat=2)))


@st.composite
def directory_data(draw: st.DrawFn, *, crowded: bool = False, tier1_lead: bool = False) -> dict[str, Any]:
    """A valid scenario-shaped mapping: 1-12 areas in a tree, 1-25 agencies, lead and window among them.

    With tier1_lead, the one flaw that the lead is a tier-1 place (for the test that it is refused).
    """
    # Parents only among earlier areas: a forest, never a cycle. parents[i] == -1 makes area i a root
    # (area 0 always is one); else its parent is the area parents[i] % i places before it, so small
    # values - where Hypothesis starts and shrinks to - give deep chains, the interesting case.
    parents = draw(PARENTS)
    start = draw(ROTATION)
    area_ids = (ID_POOL[start:] + ID_POOL[:start])[: len(parents)]
    areas: list[dict[str, Any]] = []
    for index, (area_id, parent) in enumerate(zip(area_ids, parents, strict=True)):
        area: dict[str, Any] = {"id": area_id, "name": f"地区 {area_id}", "kind": "district"}
        if index > 0 and parent >= 0:
            area["parent"] = area_ids[index - 1 - parent % index]
        areas.append(area)

    served_sets = SERVED[len(area_ids)]
    palette = draw(CROWDED_PALETTE if crowded else PALETTE)
    # Half the crowded directories have no area-scoped agency at all, so that the municipality-wide
    # and the prefecture-wide candidates of a type are left to compete with each other.
    wide_only = crowded and draw(st.booleans())
    # Size drawn first: Hypothesis' own list sizes average ~6, rarely enough for agencies to compete.
    size = draw(AGENCY_COUNT)
    traits = draw(st.lists(AGENCY_TRAITS, min_size=size, max_size=size))
    offset = draw(ROTATION)
    agency_ids = (ID_POOL[offset:] + ID_POOL[:offset])[:size]
    agencies: list[dict[str, Any]] = []
    for agency_id, (slot, drawn_scope, sector, roles, served) in zip(agency_ids, traits, strict=True):
        scope = SCOPES[1 + served % 2] if wide_only and drawn_scope == "area" else drawn_scope
        agency: dict[str, Any] = {
            "id": agency_id,
            "name": f"機関 {agency_id}",
            "type": palette[slot % len(palette)],
            "scope": scope,
            "sector": sector,
        }
        if roles:
            agency["roles"] = list(roles)
        if scope == "area":  # 1-3 areas
            agency["areas"] = [area_ids[i] for i in served_sets[served % len(served_sets)]]
        agencies.append(agency)

    # The lead and the general window may be the same agency, and the window may be a tier-1 place.
    # A lead may not be one (load_directory refuses it: test_a_tier1_place_lead_is_refused), so the
    # drawn lead loses that role, unless the caller asks for the directory that must be refused.
    lead, window = (agency_ids[i % size] for i in draw(LEAD_AND_WINDOW))
    for agency in agencies:
        if agency["id"] == lead:
            kept = [role for role in agency.get("roles", []) if role != TIER1_PLACE]
            agency["roles"] = [*kept, TIER1_PLACE] if tier1_lead else kept
    return {
        "municipality": {
            "code": "999999",
            "name": "乱数町",
            "prefecture": {"code": "990001", "name": "架空県"},
            "lead": lead,
            "general_window": window,
            "areas": areas,
        },
        "agencies": agencies,
    }


# A member's tags are drawn as slots into a per-directory pool (below); repeats are allowed on
# purpose, the rules count distinct tags.
TAG_SLOTS = st.lists(st.integers(min_value=0, max_value=2 * len(IssueTag) - 1), max_size=4)
MEMBER = st.fixed_dictionaries(
    {
        "relation": st.sampled_from([relation.value for relation in Relation]),
        "age": st.sampled_from([None, *range(131)]),  # unknown age included; one choice, not two
        "issues": TAG_SLOTS,
    }
)
HOUSEHOLD = st.lists(MEMBER, min_size=1, max_size=6)
FLAGS = st.fixed_dictionaries(
    {
        "pathway": st.sampled_from([pathway.value for pathway in Pathway]),
        # Mostly the plain case, so that tier 1 is not starved by these two flags.
        "existing_services_fit": st.sampled_from([True, True, True, False]),
        "backup_requested": st.sampled_from([False, False, False, True]),
    }
)
CONFIDENTIAL_TAG = st.sampled_from(sorted(tag.value for tag in CONFIDENTIAL))
AREA_POSITION = st.integers(min_value=0, max_value=MAX_AREAS - 1)


def tag_pool(directory: Directory) -> list[str]:
    """Every tag once, after the tags whose partner types this directory has (so those come up more).

    Without the bias most tags call for types the directory lacks, and the nearest-agency and
    tie-breaking rules are rarely put to work.
    """
    present = {agency.type for agency in directory.agencies}
    relevant = [tag.value for tag in IssueTag if present & set(RULES.tag_partners.get(tag, []))]
    return [*relevant, *(tag.value for tag in IssueTag)]


@st.composite
def consultation_for(draw: st.DrawFn, directory: Directory, *, confidential: bool = False) -> Consultation:
    """A household of 1-6 members with 0-4 tags each, in one of the directory's areas."""
    pool = tag_pool(directory)
    household = draw(HOUSEHOLD)
    for member in household:
        member["issues"] = [pool[slot % len(pool)] for slot in member["issues"]]
    if confidential:
        who = draw(st.integers(min_value=0, max_value=len(household) - 1))
        household[who]["issues"].append(draw(CONFIDENTIAL_TAG))
    areas = directory.municipality.areas
    area = areas[draw(AREA_POSITION) % len(areas)].id
    return Consultation.model_validate({"area": area, **draw(FLAGS), "household": household})


@st.composite
def cases(
    draw: st.DrawFn, *, confidential: bool = False, crowded: bool = False
) -> tuple[dict[str, Any], Directory, Consultation]:
    data = draw(directory_data(crowded=crowded))
    directory = load_directory(data)
    return data, directory, draw(consultation_for(directory, confidential=confidential))


# Independent restatements of the DEFAULT RULES


def tags_of(consultation: Consultation) -> set[IssueTag]:
    return {tag for member in consultation.household for tag in member.issues}


def is_confidential(consultation: Consultation) -> bool:
    return bool(tags_of(consultation) & CONFIDENTIAL)


def chain_of(directory: Directory, area_id: str) -> list[str]:
    parents = {area.id: area.parent for area in directory.municipality.areas}
    chain: list[str] = []
    current: str | None = area_id
    while current is not None:
        chain.append(current)
        current = parents[current]
    return chain


def may_engage(agency: Agency, consultation: Consultation) -> bool:
    return not (is_confidential(consultation) and TIER1_PLACE in agency.roles)


def nearness(agency: Agency, chain: list[str]) -> int | None:
    """0 for the consultation's own area, then ancestors, then municipality-wide, then prefecture-wide."""
    for level, area_id in enumerate(chain):
        if area_id in agency.areas:
            return level
    return {"municipality": len(chain), "prefecture": len(chain) + 1}.get(agency.scope)


def nearest_partner(directory: Directory, partner_type: str, consultation: Consultation) -> Agency | None:
    chain = chain_of(directory, consultation.area)
    candidates = [
        (rank, agency.id, agency)
        for agency in directory.agencies
        if agency.type == partner_type
        and may_engage(agency, consultation)
        and (rank := nearness(agency, chain)) is not None
    ]
    return min(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


def needed_partner_types(consultation: Consultation) -> dict[str, set[str]]:
    """Partner type -> the tags that call for it."""
    needed: dict[str, set[str]] = {}
    for tag in tags_of(consultation):
        for partner_type in RULES.tag_partners.get(tag, []):
            needed.setdefault(partner_type, set()).add(tag.value)
    return needed


def expected_patterns(consultation: Consultation) -> set[str]:
    household = consultation.household
    patterns: set[str] = set()
    if tags_of(consultation) & RULES.prefecture_tags:
        patterns.add("prefecture_category")
    if sum(1 for member in household if member.issues) >= 2:
        patterns.add("multiple_members")
    if any(len(set(member.issues)) >= 2 for member in household):
        patterns.add("multiple_issues")
    if not consultation.existing_services_fit or tags_of(consultation) & RULES.gap_tags:
        patterns.add("gap_between_systems")
    if consultation.backup_requested:
        patterns.add("backup_requested")
    return patterns


def routed(case: tuple[dict[str, Any], Directory, Consultation]) -> tuple[Directory, Consultation, Decision]:
    _, directory, consultation = case
    decision = decide(consultation, directory, RULES)
    event(f"tier {decision.tier}")
    return directory, consultation, decision


def ids_of_type(engaged: Iterable[Any], partner_type: str) -> list[str]:
    return [e.agency_id for e in engaged if e.agency_type == partner_type]


# 1. No case without an owner


def assert_owned(directory: Directory, decision: Decision) -> None:
    """The decision engages an agency that owns the case: the tier-1 place or window, else the lead first."""
    assert decision.engaged, "no agency engaged: the case has no owner"
    if decision.tier == 1:
        assert len(decision.engaged) == 1
        assert decision.engaged[0].rule_id in {"tier1_place", "general_window"}
    else:
        lead = directory.municipality.lead
        assert decision.lead == lead
        assert (decision.engaged[0].agency_id, decision.engaged[0].rule_id) == (lead, "lead")


@PROPERTY
@given(st.one_of(cases(confidential=True), cases()))
def test_every_case_has_an_owner(case: tuple[dict[str, Any], Directory, Consultation]) -> None:
    """Every decision engages at least one agency, and an owner, under any directory load_directory accepts.

    Tier 1 engages exactly one agency: the nearest tier-1 place, else the general window. The
    confidential exclusion cannot reach the window at tier 1 under the default rules, because every
    confidential tag is also a prefecture tag, so a confidential consultation is never tier 1.
    Tier 2 and 3 engage the lead first: it is never a tier-1 place, so never excluded.
    """
    directory, _, decision = routed(case)
    assert set(RULES.confidential_tags) <= set(RULES.prefecture_tags)  # the premise of the tier-1 claim
    assert_owned(directory, decision)


@PROPERTY
@given(directory_data(tier1_lead=True))
def test_a_tier1_place_lead_is_refused(data: dict[str, Any]) -> None:
    """A lead that is a tier-1 place could not take a confidential case: load_directory refuses it."""
    lead = data["municipality"]["lead"]
    with pytest.raises(DirectoryError, match=f"municipality lead '{re.escape(lead)}' has role tier1_place"):
        load_directory(data)


TAG_SET = st.frozensets(st.sampled_from(list(IssueTag)), max_size=4)
LOCAL_RULES = st.fixed_dictionaries(
    {
        "confidential_tags": TAG_SET,
        "prefecture_tags": TAG_SET,
        "gap_tags": TAG_SET,
        # Mostly the plain reading (2), so that a lone confidential tag can still stay at tier 1.
        "multiple_members_threshold": st.sampled_from([2, 2, 1, 3]),
        "multiple_issues_threshold": st.sampled_from([2, 2, 1, 3]),
    }
)


@PROPERTY
@given(directory_data(), LOCAL_RULES, st.data())
def test_under_local_rules_a_directory_is_accepted_exactly_when_every_case_has_an_owner(
    data: dict[str, Any], local: dict[str, Any], more: st.DataObject
) -> None:
    """parse_config refuses a directory only with the consultation it would orphan, and accepts it otherwise.

    Local rules may make a tag confidential without making it a pattern, so a confidential case can
    stay at tier 1, where only the general window may take it: a window that is a tier-1 place is
    then refused. Any accepted configuration gives every consultation an owner.
    """
    body = {**data, **{name: sorted(value) if isinstance(value, frozenset) else value for name, value in local.items()}}
    directory, rules = load_directory(body), RuleSet.from_mapping(body)
    try:
        config = parse_config(body)
    except DirectoryError as refused:
        event("local rules: refused")
        assert refused.field == "municipality.general_window"
        [tag] = re.findall(r"only the confidential tag (\w+) stays", str(refused))
        area = directory.municipality.areas[0].id
        orphan = Consultation.model_validate(
            {"area": area, "pathway": "self", "household": [{"relation": "self", "issues": [tag]}]}
        )
        assert decide(orphan, directory, rules).engaged == [], "refused, yet that consultation has an owner"
        return
    consultation = more.draw(consultation_for(config.directory))
    # A local confidential tag added to the household, or alone: the smallest case to stay at tier 1.
    how = more.draw(st.sampled_from(["as drawn", "plus a confidential tag", "a confidential tag alone"]))
    if rules.confidential_tags and how != "as drawn":
        tag = more.draw(st.sampled_from(sorted(rules.confidential_tags)))
        household = consultation.model_dump(mode="json")["household"]
        if how == "a confidential tag alone":
            household = [{"relation": "self", "issues": []}]
        household[0]["issues"].append(tag)
        consultation = consultation.model_copy(update={"household": [HouseholdMember(**m) for m in household]})
    decision = decide(consultation, config.directory, config.rules)
    confidential = any(tag in rules.confidential_tags for m in consultation.household for tag in m.issues)
    event(f"local rules: accepted, tier {decision.tier}{', confidential' if confidential else ''}")
    assert_owned(config.directory, decision)


# 2. Tier 3 exactly for the prefecture categories


@PROPERTY
@given(cases())
def test_tier_3_iff_a_member_has_a_prefecture_category_tag(
    case: tuple[dict[str, Any], Directory, Consultation],
) -> None:
    _, consultation, decision = routed(case)
    has_prefecture_tag = any(tag in RULES.prefecture_tags for m in consultation.household for tag in m.issues)
    assert (decision.tier == 3) == has_prefecture_tag


# 3. Confidential consultations never reach a tier-1 place


@PROPERTY
@given(st.one_of(cases(confidential=True), cases()))
def test_a_confidential_consultation_never_engages_a_tier1_place(
    case: tuple[dict[str, Any], Directory, Consultation],
) -> None:
    directory, consultation, decision = routed(case)
    if is_confidential(consultation):
        for engagement in decision.engaged:
            assert TIER1_PLACE not in directory.agency(engagement.agency_id).roles, engagement
    # Exclusions are the confidentiality rule at work and nothing else: only tier-1 places of a
    # confidential consultation, and never one that got engaged after all.
    engaged = set(decision.engaged_ids)
    for exclusion in decision.excluded:
        assert is_confidential(consultation)
        assert exclusion.rule_id == "confidential_exclusion"
        assert TIER1_PLACE in directory.agency(exclusion.agency_id).roles
        assert exclusion.agency_id not in engaged
        event("confidential: a tier-1 place was excluded")


# 4. The rest of the contract


@PROPERTY
@given(cases())
def test_tier_1_iff_no_pattern_fired_and_patterns_follow_the_rules(
    case: tuple[dict[str, Any], Directory, Consultation],
) -> None:
    _, consultation, decision = routed(case)
    assert (decision.tier == 1) == (not decision.patterns)
    assert set(decision.pattern_ids) == expected_patterns(consultation)
    assert len(decision.pattern_ids) == len(set(decision.pattern_ids))
    if decision.tier == 1:
        assert decision.lead is None
        assert decision.resource_gaps == []


@PROPERTY
@given(st.one_of(cases(crowded=True), cases()))
def test_engaged_agencies_exist_once_each_and_are_the_nearest(
    case: tuple[dict[str, Any], Directory, Consultation],
) -> None:
    directory, consultation, decision = routed(case)
    known = {agency.id for agency in directory.agencies}
    assert set(decision.engaged_ids) <= known
    assert len(decision.engaged_ids) == len(set(decision.engaged_ids))
    for engagement in decision.engaged:
        assert engagement.agency_type == directory.agency(engagement.agency_id).type

    # Exactly the agencies the rules name: at tier 1 the nearest place else the window; at tier 2/3
    # the lead plus, for every type a tag calls for, the nearest allowed agency of that type.
    chain = chain_of(directory, consultation.area)
    if decision.tier == 1:
        places = [
            (level, agency.id)
            for agency in directory.agencies
            if TIER1_PLACE in agency.roles
            for level, area_id in enumerate(chain)
            if area_id in agency.areas
        ]
        expected = [min(places)[1]] if places else [directory.municipality.general_window]
        assert decision.engaged_ids == expected
    else:
        wanted = {
            agency.id
            for partner_type in needed_partner_types(consultation)
            if (agency := nearest_partner(directory, partner_type, consultation)) is not None
        }
        wanted.add(directory.municipality.lead)
        assert set(decision.engaged_ids) == wanted


@PROPERTY
@given(st.one_of(cases(crowded=True), cases()), st.randoms(use_true_random=False))
def test_decide_is_deterministic_and_ignores_file_order(
    case: tuple[dict[str, Any], Directory, Consultation], rnd: random.Random
) -> None:
    data, directory, consultation = case
    first = decide(consultation, directory, RULES)
    assert decide(consultation.model_copy(deep=True), directory, RULES) == first
    assert decide(consultation, directory, RuleSet.default()) == first

    # The same municipality written in another order: ties go to the smallest id, never to position.
    shuffled = {**data, "municipality": {**data["municipality"]}, "agencies": list(data["agencies"])}
    rnd.shuffle(shuffled["agencies"])
    shuffled["municipality"]["areas"] = rnd.sample(data["municipality"]["areas"], len(data["municipality"]["areas"]))
    assert decide(consultation, load_directory(shuffled), RULES) == first


@PROPERTY
@given(st.one_of(cases(confidential=True), cases()))
def test_every_resource_gap_is_really_unresolvable(
    case: tuple[dict[str, Any], Directory, Consultation],
) -> None:
    """A gap is reported for a partner type exactly when no allowed agency of it serves the area.

    "Serves the area": lists the consultation's area or an ancestor, or has scope municipality or
    prefecture. An agency of a gap type may still be on the case as the LEAD (an area-scoped lead
    serving other areas): the lead is engaged for being the lead, not as that partner type.
    """
    directory, consultation, decision = routed(case)
    if decision.tier == 1:
        assert decision.resource_gaps == []
        return
    needed = needed_partner_types(consultation)
    unresolvable = {t for t in needed if nearest_partner(directory, t, consultation) is None}
    assert set(decision.gap_types) == unresolvable
    assert len(decision.gap_types) == len(set(decision.gap_types))
    for gap in decision.resource_gaps:
        assert set(gap.tags) == needed[gap.partner_type]
        partners = [e for e in decision.engaged if e.rule_id == "partner"]
        assert ids_of_type(partners, gap.partner_type) == []
        for agency_id in ids_of_type(decision.engaged, gap.partner_type):
            event("gap type engaged as the lead")
            assert agency_id == directory.municipality.lead
