"""The routing rules: a consultation's tier (圏域) and engaged agencies, decided from data alone.

Implements the DEFAULT RULES of shared/scenarios/routing-nabari.yaml; every choice a municipality
may make differently [LOCAL] (DOMAIN.md §2.6) lives in RuleSet.

Edge cases, decided here once so every caller gets the same answer:
- an area id the directory does not know raises UnknownArea (the caller rejects or dead-letters it);
- several agencies of a type at the same nearest level: the smallest agency id wins;
- a partner type with no agency serving the area (none in the directory, or all excluded as
  confidential) is a resource gap (社会資源の不足), never an error;
- a confidential tag anywhere in the household excludes every tier1_place agency, also when it
  would be a partner or the general window; resolution then falls back to the next level;
- tier 1 with no tier1_place for the area, or with it excluded: the general window receives it;
- so that every first decision has an owner, a directory is refused whose lead is a tier1_place
  (shared.directory), or whose general window is one while the rules leave some confidential
  consultation at tier 1 (`check_owners`);
- capacity routing [LOCAL, off by default]: an agency holding as many live referrals as its directory
  `capacity` is passed over for the next eligible one of its type (partners and tier-1 places; the lead
  and the general window, owners of last resort, never are); each pass is an exclusion and a resource
  gap `capacity:<agency_type>`, and a type with every agency full engages none of them.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.consultation import ConsultationFacts, MemberFacts
from shared.directory import TIER1_PLACE_ROLE, Agency, Directory, DirectoryError, UnknownArea
from shared.vocabulary import IssueTag, Pathway, Relation

__all__ = [
    "DEFAULT_TAG_PARTNERS",
    "OWNER_RULES",
    "PATTERNS",
    "TIER1_PLACE_ROLE",
    "Decision",
    "Engagement",
    "Exclusion",
    "FiredPattern",
    "ResourceGap",
    "Rule",
    "RuleSet",
    "UnknownArea",
    "check_owners",
    "decide",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """A routing rule with the text it rests on (根拠)."""

    id: str
    legal_basis: str


# Every basis names the seed line it rests on (seed/000_2cdb01159b995531.txt, as DOMAIN.md cites it) or the
# Act's article; what the system decides beyond the text says so ("設計上の選択", a design choice), so a
# reader of a decision never takes an inference of ours for law (tests/router/test_citations.py).
DESIGN_CHOICE = "設計上の選択"

PREFECTURE_CATEGORY = Rule(
    "prefecture_category",
    "指針 第四 (seed L2258): 都道府県が市町村と連携して支援体制を構築する対象 (医療的ケア児、難病・がん患者、"
    "配偶者からの暴力を受けた者、刑務所出所者等); 通知 第二の4 (seed L2825)",
)
MULTIPLE_MEMBERS = Rule(
    "multiple_members", f"実施要領 3(2) ① (seed L3381); {DESIGN_CHOICE}: 「複数」の人数 ([LOCAL], 既定 2)"
)
MULTIPLE_ISSUES = Rule(
    "multiple_issues", f"実施要領 3(2) ② (seed L3381); {DESIGN_CHOICE}: 「複数」の課題数 ([LOCAL], 既定 2)"
)
GAP_BETWEEN_SYSTEMS = Rule(
    "gap_between_systems",
    f"実施要領 3(2) ③ (seed L3381); 指針 第三 一 「制度の狭間にある課題」 (seed L2230); "
    f"{DESIGN_CHOICE}: 表の例 (seed L3387–L3389) を③とみなす",
)
BACKUP_REQUESTED = Rule(
    "backup_requested",
    "社会福祉法106条の3第1項第2号 (seed L2103); 指針 第二 一4 バックアップ体制 (seed L2214)",
)
TIER1_PLACE = Rule(
    "tier1_place",
    "社会福祉法106条の3第1項第2号 (seed L2103); 指針 第二 一1 相談を包括的に受け止める場 (seed L2202)",
)
# The general window stands in for the missing tier-1 place: the 通知 names one window for all consultations
# as a way to run that place; sending it what no tier-1 place may take is ours.
GENERAL_WINDOW = Rule(
    "general_window",
    f"社会福祉法106条の3第1項第2号 (seed L2103); 通知 第二の2 各種の相談窓口を一つに集約 (seed L2758); "
    f"{DESIGN_CHOICE}: 受け止める場のないとき総合相談窓口が受ける",
)
LEAD = Rule("lead", "社会福祉法106条の3第1項第3号 (seed L2105); 指針 第三 一1 協働の中核 (seed L2234–L2236)")
PARTNER = Rule(
    "partner",
    f"実施要領 3(2) 表 (seed L3383–L3389); 3(8)ウ 福祉以外の関係機関 (seed L3489); "
    f"{DESIGN_CHOICE}: 表にない課題の連携先 ([LOCAL])",
)
CONFIDENTIAL_EXCLUSION = Rule(
    "confidential_exclusion",
    f"{DESIGN_CHOICE}: 住民に身近な圏域の場には回さない; 理由とする記述: 指針 第四 「身近な地域では当事者が"
    f"声を上げにくく」 (seed L2258); 通知 第二の2 留意点 (seed L2744)",
)
CAPACITY = Rule("capacity", f"{DESIGN_CHOICE} [LOCAL]: 名簿の受入上限 (capacity) に達した機関は次の機関に替える")

PATTERNS: tuple[Rule, ...] = (
    PREFECTURE_CATEGORY,
    MULTIPLE_MEMBERS,
    MULTIPLE_ISSUES,
    GAP_BETWEEN_SYSTEMS,
    BACKUP_REQUESTED,
)

# 実施要領 3(2) table (seed L3383–L3389) and 3(8)ウ (seed L3489), extended to every tag of
# shared.vocabulary.IssueTag (the extension is a design choice; see PARTNER).
DEFAULT_TAG_PARTNERS: Mapping[str, tuple[str, ...]] = {
    "long_term_care": ("community_comprehensive_support_center",),
    "childcare": ("child_rearing_support_hub", "nursery"),
    "disability": ("disability_consultation_office", "disability_service_provider"),
    "suspected_disability": (
        "welfare_office",
        "developmental_disability_support_center",
        "disability_service_provider",
        "public_employment_office",
    ),
    "higher_brain_dysfunction": ("medical_institution", "disability_service_provider"),
    "mental_health": ("medical_institution",),
    "health": ("medical_institution",),
    "cancer": ("cancer_care_hospital", "occupational_health_support_center"),
    "intractable_disease": ("medical_institution", "intractable_disease_support_center"),
    "undesignated_intractable_disease": ("medical_institution", "intractable_disease_support_center"),
    "medical_care_child": ("medical_institution", "medical_care_child_support_center"),
    "employment": ("public_employment_office",),
    "hikikomori": ("hikikomori_support_center", "youth_support_station"),
    "poverty": ("independence_support_agency",),
    "housing": ("independence_support_agency",),
    "social_isolation": ("social_welfare_council",),
    "education": ("board_of_education",),
    "domestic_violence": ("welfare_office", "spousal_violence_support_center"),
    "released_prisoner": ("settlement_support_center",),
    "legal": ("legal_support_center",),
}

DEFAULT_PREFECTURE_TAGS = frozenset(
    {
        IssueTag.medical_care_child,
        IssueTag.cancer,
        IssueTag.intractable_disease,
        IssueTag.undesignated_intractable_disease,
        IssueTag.domestic_violence,
        IssueTag.released_prisoner,
    }
)
DEFAULT_GAP_TAGS = frozenset(
    {
        IssueTag.suspected_disability,
        IssueTag.undesignated_intractable_disease,
        IssueTag.higher_brain_dysfunction,
    }
)
DEFAULT_CONFIDENTIAL_TAGS = frozenset({IssueTag.domestic_violence, IssueTag.released_prisoner})


def _default_tag_partners() -> dict[str, list[str]]:
    return {tag: list(types) for tag, types in DEFAULT_TAG_PARTNERS.items()}


class RuleSet(BaseModel):
    """Everything a municipality may set for itself [LOCAL]; the defaults are the scenario files' rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag_partners: dict[str, list[str]] = Field(default_factory=_default_tag_partners)
    prefecture_tags: frozenset[IssueTag] = DEFAULT_PREFECTURE_TAGS
    gap_tags: frozenset[IssueTag] = DEFAULT_GAP_TAGS
    confidential_tags: frozenset[IssueTag] = DEFAULT_CONFIDENTIAL_TAGS
    # The seed gives no number for "multiple" (DOMAIN.md §3.2); 2 is the plain reading.
    multiple_members_threshold: int = Field(default=2, ge=1)
    multiple_issues_threshold: int = Field(default=2, ge=1)
    # Off: an agency's `capacity` in the directory is information only, and decisions are as without it.
    capacity_routing: bool = False

    @field_validator("tag_partners")
    @classmethod
    def _known_tags(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # A misspelt tag would silently never match a consultation.
        unknown = sorted(set(value) - {tag.value for tag in IssueTag})
        if unknown:
            raise ValueError(f"unknown issue tags in tag_partners: {', '.join(unknown)}")
        return value

    @classmethod
    def default(cls) -> "RuleSet":
        """The DEFAULT RULES of the scenario files."""
        return cls()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "RuleSet":
        """Rules from the RuleSet keys of a mapping; tag_partners overrides per tag, all else defaults."""
        values = {name: data[name] for name in cls.model_fields if name in data}
        overrides = values.get("tag_partners")
        if isinstance(overrides, Mapping):
            # Per-tag merge: a municipality names only the tags it routes differently.
            values["tag_partners"] = {**_default_tag_partners(), **overrides}
        return cls.model_validate(values)


class FiredPattern(BaseModel):
    """A case pattern (支援対象者の類型) that fired, with its basis and what made it fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    legal_basis: str
    reason: str


class Engagement(BaseModel):
    """One agency engaged on the case, with the rule that engaged it (fields as shared.events.EngagedAgency)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_id: str
    agency_type: str
    rule_id: str
    legal_basis: str
    reason: str
    # The issue tags a partner was engaged for (its need-to-know); empty for the case's owner, who holds
    # the whole picture.
    tags: list[str] = Field(default_factory=list)


class ResourceGap(BaseModel):
    """A partner type no agency provides for this area (社会資源の不足), and the tags that needed it.

    `capacity:<agency_type>` when an agency of the type was passed over as full (capacity routing).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_type: str
    tags: list[str]


class Exclusion(BaseModel):
    """An agency the rules would have engaged but deliberately did not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_id: str
    rule_id: str
    legal_basis: str
    reason: str


class Decision(BaseModel):
    """The first routing decision (振り分け) for a consultation, with the reason for every part."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Literal[1, 2, 3]
    patterns: list[FiredPattern]
    lead: str | None
    engaged: list[Engagement]
    resource_gaps: list[ResourceGap]
    excluded: list[Exclusion] = Field(default_factory=list)
    directory_version: str

    @property
    def pattern_ids(self) -> list[str]:
        """Ids of the patterns that fired, in rule order."""
        return [pattern.id for pattern in self.patterns]

    @property
    def engaged_ids(self) -> list[str]:
        """Ids of the engaged agencies, lead first."""
        return [engagement.agency_id for engagement in self.engaged]

    @property
    def gap_types(self) -> list[str]:
        """Partner types reported as resource gaps."""
        return [gap.partner_type for gap in self.resource_gaps]


Load = Mapping[str, int]
"""Live referrals held, by agency id (what capacity routing compares with each agency's capacity)."""


def decide(
    consultation: ConsultationFacts, directory: Directory, rules: RuleSet, *, load: Load | None = None
) -> Decision:
    """Decide tier, lead and engaged agencies for a consultation under a municipality's rules.

    `load` counts for capacity routing only (when the rules turn it on; missing agencies hold none).
    """
    chain = [area.id for area in directory.ancestors(consultation.area)]
    patterns = fired_patterns(consultation, rules)
    tier = tier_of(patterns)
    plan = _new_plan(consultation, rules, load)
    if tier == 1:
        _engage_tier1_place(plan, directory, chain)
        lead = None
    else:
        lead = _engage_lead(plan, directory)
        _engage_partners(plan, consultation, directory, rules, chain)
    return Decision(
        tier=tier,
        patterns=patterns,
        lead=lead,
        engaged=[engagement.freeze() for engagement in plan.engaged.values()],
        resource_gaps=[ResourceGap(partner_type=t, tags=tags) for t, tags in plan.gaps.items()],
        excluded=list(plan.excluded.values()),
        directory_version=directory.version,
    )


def check_owners(directory: Directory, rules: RuleSet) -> None:
    """Refuse (DirectoryError) a directory under which a first decision could engage no agency.

    At tier 2 and 3 the lead owns the case, and shared.directory already refuses a lead that is a
    tier-1 place. At tier 1 the general window is the last resort, so it must not be a tier-1 place
    when a confidential consultation can stay at tier 1: that depends on the rules, as a
    municipality may make a tag confidential without making it a pattern (e.g. social_isolation).
    Patterns only grow with members and tags, so one member with one confidential tag is the
    smallest such consultation, and checking each tag alone is enough.
    """
    window = directory.agency(directory.municipality.general_window)
    if TIER1_PLACE_ROLE not in window.roles:
        return
    for tag in sorted(rules.confidential_tags):
        lone = ConsultationFacts(
            area="any",  # patterns do not depend on the area
            pathway=Pathway.self_,
            household=[MemberFacts(relation=Relation.self_, issues=[tag])],
        )
        if not fired_patterns(lone, rules):
            raise DirectoryError(
                f"general window {window.id!r} has role {TIER1_PLACE_ROLE}, but under these rules a consultation "
                f"with only the confidential tag {tag} stays at tier 1, where the general window is the last "
                f"resort and a tier-1 place may not take it (confidential_exclusion); choose another general window, "
                f"drop the role {TIER1_PLACE_ROLE} from {window.id!r}, or make {tag} a prefecture or gap tag",
                field="municipality.general_window",
            )


def fired_patterns(consultation: ConsultationFacts, rules: RuleSet) -> list[FiredPattern]:
    """The case patterns of 指針 第四 and 実施要領 3(2) that the consultation shows, in rule order."""
    members = list(zip(_labels(consultation.household), consultation.household, strict=True))
    fired: list[FiredPattern] = []

    prefecture = [
        f"{label}: {_join(tags)}"
        for label, member in members
        if (tags := [tag for tag in _distinct(member.issues) if tag in rules.prefecture_tags])
    ]
    if prefecture:
        fired.append(_fired(PREFECTURE_CATEGORY, "; ".join(prefecture)))

    with_issues = [label for label, member in members if member.issues]
    if len(with_issues) >= rules.multiple_members_threshold:
        fired.append(_fired(MULTIPLE_MEMBERS, f"{len(with_issues)} members with issues: {_join(with_issues)}"))

    many = [
        f"{label}: {_join(tags)}"
        for label, member in members
        if len(tags := _distinct(member.issues)) >= rules.multiple_issues_threshold
    ]
    if many:
        fired.append(_fired(MULTIPLE_ISSUES, "; ".join(many)))

    gap_reasons = [] if consultation.existing_services_fit else ["existing services do not fit"]
    gap_reasons += [
        f"{label}: {_join(tags)}"
        for label, member in members
        if (tags := [tag for tag in _distinct(member.issues) if tag in rules.gap_tags])
    ]
    if gap_reasons:
        fired.append(_fired(GAP_BETWEEN_SYSTEMS, "; ".join(gap_reasons)))

    if consultation.backup_requested:
        fired.append(_fired(BACKUP_REQUESTED, "a tier-1 place asked for backup"))
    return fired


def tier_of(patterns: list[FiredPattern]) -> Literal[1, 2, 3]:
    """Tier 3 (都道府県域) on a prefecture category, tier 2 (市町村域) on any other pattern, else tier 1."""
    ids = {pattern.id for pattern in patterns}
    if PREFECTURE_CATEGORY.id in ids:
        return 3
    return 2 if ids else 1


# The rules that make an agency the case's owner in a first decision: it sees the whole household.
_OWNING_RULES = frozenset({LEAD.id, TIER1_PLACE.id, GENERAL_WINDOW.id})


@dataclass
class _Engaging:
    agency: Agency
    rule: Rule
    reasons: list[str]
    tags: list[str] = field(default_factory=list)

    def freeze(self) -> Engagement:
        return Engagement(
            agency_id=self.agency.id,
            agency_type=self.agency.type,
            rule_id=self.rule.id,
            legal_basis=self.rule.legal_basis,
            reason="; ".join(self.reasons),
            tags=[] if self.rule.id in _OWNING_RULES else list(self.tags),
        )


@dataclass
class _Plan:
    """The decision under construction; dicts keep first-insertion order, which makes output stable."""

    confidential: list[str]
    # Live referrals by agency when capacity routing is on; None when it is off.
    load: Load | None = None
    engaged: dict[str, _Engaging] = field(default_factory=dict)
    gaps: dict[str, list[str]] = field(default_factory=dict)
    excluded: dict[str, Exclusion] = field(default_factory=dict)

    def engage(self, agency: Agency, rule: Rule, reason: str, *, tag: str | None = None) -> None:
        current = self.engaged.get(agency.id)
        if current is None:
            current = self.engaged[agency.id] = _Engaging(agency, rule, [reason])
        elif reason not in current.reasons:
            current.reasons.append(reason)
        if tag is not None and tag not in current.tags:
            current.tags.append(tag)

    def allows(self, agency: Agency) -> bool:
        return not (self.confidential and TIER1_PLACE_ROLE in agency.roles)

    def exclude(self, agency: Agency, as_what: str) -> None:
        if agency.id not in self.excluded:
            self.excluded[agency.id] = Exclusion(
                agency_id=agency.id,
                rule_id=CONFIDENTIAL_EXCLUSION.id,
                legal_basis=CONFIDENTIAL_EXCLUSION.legal_basis,
                reason=f"confidential {_join(self.confidential)}: tier-1 place not engaged as {as_what}",
            )

    def has_room(self, agency: Agency) -> bool:
        return self.load is None or agency.capacity is None or self.load.get(agency.id, 0) < agency.capacity

    def pass_over(self, agency: Agency, as_what: str, tag: str | None) -> None:
        """Record that a full agency was passed over: an exclusion with the count, and a resource gap."""
        held = self.load.get(agency.id, 0) if self.load is not None else 0
        if agency.id not in self.excluded:
            self.excluded[agency.id] = Exclusion(
                agency_id=agency.id,
                rule_id=CAPACITY.id,
                legal_basis=CAPACITY.legal_basis,
                reason=f"at capacity {held}/{agency.capacity}: passed over as {as_what}",
            )
        tags = self.gaps.setdefault(f"capacity:{agency.type}", [])
        if tag is not None and tag not in tags:
            tags.append(tag)

    def pick(
        self, candidates: Iterable[Agency], as_what: str, *, by_capacity: bool = False, tag: str | None = None
    ) -> Agency | None:
        """The first allowed candidate (with room, if `by_capacity`); the one the rules would pick but for
        confidentiality is recorded, and so is each full one passed over."""
        ordered = list(candidates)
        allowed = [agency for agency in ordered if self.allows(agency)]
        if ordered and (not allowed or ordered[0] is not allowed[0]):
            self.exclude(ordered[0], as_what)
        for agency in allowed:
            if not by_capacity or self.has_room(agency):
                return agency
            self.pass_over(agency, as_what, tag)
        return None


def _new_plan(consultation: ConsultationFacts, rules: RuleSet, load: Load | None) -> _Plan:
    confidential = sorted({t.value for m in consultation.household for t in m.issues if t in rules.confidential_tags})
    return _Plan(confidential=confidential, load=(load or {}) if rules.capacity_routing else None)


def _engage_tier1_place(plan: _Plan, directory: Directory, chain: list[str]) -> None:
    places = (
        agency
        for level in chain
        for agency in _smallest_first(a for a in directory.agencies if level in a.areas)
        if TIER1_PLACE_ROLE in agency.roles
    )
    place = plan.pick(places, "tier-1 place", by_capacity=True)
    if place is not None:
        plan.engage(place, TIER1_PLACE, f"tier-1 place for {chain[0]}")
        return
    window = directory.agency(directory.municipality.general_window)
    window_reason = "general window (no tier-1 place may receive it)"
    if plan.pick([window], "general window") is not None:
        plan.engage(window, GENERAL_WINDOW, window_reason)


def _engage_lead(plan: _Plan, directory: Directory) -> str | None:
    lead = directory.agency(directory.municipality.lead)
    if plan.pick([lead], "lead") is None:
        return None
    plan.engage(lead, LEAD, f"協働の中核 of {directory.municipality.name}")
    return lead.id


def _engage_partners(
    plan: _Plan, consultation: ConsultationFacts, directory: Directory, rules: RuleSet, chain: list[str]
) -> None:
    for member in consultation.household:
        for tag in _distinct(member.issues):
            for partner_type in rules.tag_partners.get(tag, []):
                agency = plan.pick(
                    _nearest(directory, partner_type, chain),
                    f"{partner_type} for {tag}",
                    by_capacity=True,
                    tag=tag.value,
                )
                if agency is None:
                    tags = plan.gaps.setdefault(partner_type, [])
                    if tag.value not in tags:
                        tags.append(tag.value)
                else:
                    plan.engage(agency, PARTNER, f"tag {tag} → {partner_type}", tag=tag.value)


def _nearest(directory: Directory, agency_type: str, chain: list[str]) -> Iterator[Agency]:
    """Agencies of a type, most local first: by area level, then municipality-wide, then prefecture-wide."""
    of_type = directory.agencies_of_type(agency_type)
    for level in chain:
        yield from (agency for agency in of_type if level in agency.areas)
    yield from (agency for agency in of_type if agency.scope == "municipality")
    yield from (agency for agency in of_type if agency.scope == "prefecture")


def _smallest_first(agencies: Iterable[Agency]) -> list[Agency]:
    return sorted(agencies, key=lambda agency: agency.id)


def _fired(rule: Rule, reason: str) -> FiredPattern:
    return FiredPattern(id=rule.id, legal_basis=rule.legal_basis, reason=reason)


def _distinct(tags: list[IssueTag]) -> list[IssueTag]:
    return list(dict.fromkeys(tags))


def _labels(household: Sequence[MemberFacts]) -> list[str]:
    """Each member by relation, numbered by position only when the relation repeats."""
    relations = [member.relation.value for member in household]
    return [
        relation if relations.count(relation) == 1 else f"{relation}#{index + 1}"
        for index, relation in enumerate(relations)
    ]


def _join(items: list[str] | list[IssueTag]) -> str:
    return ", ".join(str(item) for item in items)


# The rules of the decisions after the first one (escalations, returns, re-routing).
PREFECTURE_SUPPORT = Rule(
    "prefecture_support_requested",
    f"指針 第四 都道府県の支援 (seed L2258); 通知 第二の4 (seed L2825); "
    f"{DESIGN_CHOICE}: 中核の求めで都道府県域の機関を加える",
)
RETURN_TO_COMMUNITY = Rule(
    "return_to_community",
    f"指針 第三 一4 地域住民等との連携 (seed L2248); 実施要領 3(2)エ (seed L3375); "
    f"{DESIGN_CHOICE}: 見守りは身近な圏域の場へ (報告書の整理 seed L1242; 指針の文言ではない)",
)
REROUTE = Rule(
    "reroute",
    f"実施要領 3(2) 「たらい回し」を生じさせない (seed L3367); 連携先は同表 (seed L3383–L3389); "
    f"{DESIGN_CHOICE}: 断られた紹介は同種の次の機関へ",
)
REROUTE_TO_LEAD = Rule(
    "reroute_to_lead",
    f"社会福祉法106条の3第1項第3号 (seed L2105); 指針 第三 一1 協働の中核 (seed L2234–L2236); "
    f"{DESIGN_CHOICE}: 同種の機関が他にないとき中核が引き受ける",
)
ESCALATION = Rule(
    "escalation",
    f"{DESIGN_CHOICE} [LOCAL]: 期限内に受諾されない紹介は協働の中核へ; 関連: 実施要領 3(4)ア(エ) "
    f"推進員による支援の実施状況の把握 (seed L3425)",
)

# Referrals under these rules make their agency the case's owner (the lead, or the tier-1 place or
# general window at tier 1): engaged for no tag in particular, it sees every tag of the household.
OWNER_RULES = frozenset({*_OWNING_RULES, RETURN_TO_COMMUNITY.id, REROUTE_TO_LEAD.id, ESCALATION.id})


def is_confidential(consultation: ConsultationFacts, rules: RuleSet) -> bool:
    """True when a member has a tag that must never reach the neighbourhood (CONFIDENTIAL_EXCLUSION)."""
    return any(tag in rules.confidential_tags for member in consultation.household for tag in member.issues)


def alternatives(
    consultation: ConsultationFacts,
    directory: Directory,
    rules: RuleSet,
    agency_type: str,
    *,
    excluding: set[str],
    load: Load | None = None,
) -> list[Agency]:
    """Agencies of a type that may take a rejected or failed referral over, nearest first (confidentiality
    kept; under capacity routing, full ones left out)."""
    chain = [area.id for area in directory.ancestors(consultation.area)]
    confidential = is_confidential(consultation, rules)
    plan = _new_plan(consultation, rules, load)
    seen: set[str] = set()
    ordered = []
    for agency in _nearest(directory, agency_type, chain):
        if agency.id in seen or agency.id in excluding or (confidential and TIER1_PLACE_ROLE in agency.roles):
            continue
        if not plan.has_room(agency):
            continue
        seen.add(agency.id)
        ordered.append(agency)
    return ordered


def decide_backup(
    consultation: ConsultationFacts, directory: Directory, rules: RuleSet, *, load: Load | None = None
) -> Decision:
    """A tier-1 place asked the municipal team for backup (指針 第二 一4): decide as a backup request."""
    return decide(consultation.model_copy(update={"backup_requested": True}), directory, rules, load=load)


def decide_prefecture_support(
    consultation: ConsultationFacts, directory: Directory, rules: RuleSet, *, load: Load | None = None
) -> Decision:
    """The lead asked for prefecture-level support: tier 3, the lead plus prefecture-scope partners."""
    base = decide(consultation, directory, rules, load=load)
    plan = _new_plan(consultation, rules, load)
    lead = _engage_lead(plan, directory)
    for member in consultation.household:
        for tag in _distinct(member.issues):
            for partner_type in rules.tag_partners.get(tag, []):
                prefecture_wide = [a for a in directory.agencies_of_type(partner_type) if a.scope == "prefecture"]
                agency = plan.pick(
                    prefecture_wide, f"prefecture-level {partner_type} for {tag}", by_capacity=True, tag=tag.value
                )
                if agency is None:
                    tags = plan.gaps.setdefault(partner_type, [])
                    if tag.value not in tags:
                        tags.append(tag.value)
                else:
                    plan.engage(
                        agency, PREFECTURE_SUPPORT, f"prefecture support: tag {tag} → {partner_type}", tag=tag.value
                    )
    return Decision(
        tier=3,
        patterns=[*base.patterns, _fired(PREFECTURE_SUPPORT, "the lead asked for prefecture-level support")],
        lead=lead,
        engaged=[engagement.freeze() for engagement in plan.engaged.values()],
        resource_gaps=[ResourceGap(partner_type=t, tags=tags) for t, tags in plan.gaps.items()],
        excluded=list(plan.excluded.values()),
        directory_version=directory.version,
    )


def decide_return_to_community(
    consultation: ConsultationFacts, directory: Directory, rules: RuleSet, *, load: Load | None = None
) -> Decision:
    """The lead returned the case to the community for watching over (見守り): tier 1, the local place."""
    chain = [area.id for area in directory.ancestors(consultation.area)]
    plan = _new_plan(consultation, rules, load)
    _engage_tier1_place(plan, directory, chain)
    engaged = [
        engagement.freeze().model_copy(
            update={"rule_id": RETURN_TO_COMMUNITY.id, "legal_basis": RETURN_TO_COMMUNITY.legal_basis}
        )
        for engagement in plan.engaged.values()
    ]
    return Decision(
        tier=1,
        patterns=[_fired(RETURN_TO_COMMUNITY, "the lead returned the case to the community (見守り)")],
        lead=None,
        engaged=engaged,
        resource_gaps=[ResourceGap(partner_type=t, tags=tags) for t, tags in plan.gaps.items()],
        excluded=list(plan.excluded.values()),
        directory_version=directory.version,
    )
