"""The indicators: the catalog of outcome indicators (成果把握項目, DOMAIN.md §6.2–6.3) and the
operational measures, each event-based one a small function over a report window's facts.

Every function is registered with its catalog entry by `@indicator`, in the order the report lists
them; its docstring cites the line of the source report (the seed, by the line numbers DOMAIN.md §6
gives) that it implements, the section of LAW-2020.md for what the 2020 amendment added, or says that
it is an operational measure the report does not ask for.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from services.metrics.models import (
    CaseFact,
    CaseLifeFact,
    ContactFact,
    DecisionFact,
    MeetingFact,
    MonitoringFact,
    PlanVersionFact,
    ReferralFact,
    TransferFact,
)
from shared.directory import TIER1_PLACE_ROLE, Agency, Directory
from shared.events import LIVE_REFERRAL_STATUSES, MeetingKind

Unit = Literal["count", "percent", "hours"]
# The states a 終結 of coordination leaves a case in: closed, or closed with 見守り continuing.
ENDED = frozenset({"closed", "watching"})
# The meetings held on one case (a 推進会議 discusses none).
CASE_MEETING_KINDS: frozenset[MeetingKind] = frozenset({"case_meeting", "support_meeting", "plan_meeting"})


@dataclass(frozen=True)
class Indicator:
    """An indicator of the catalog (DOMAIN.md §6.2–6.3) or an operational measure."""

    id: str
    name_ja: str
    name_en: str
    definition: str
    source: str = "events"
    unit: Unit = "count"


@dataclass(frozen=True)
class Rules:
    """A municipality's counting choices [LOCAL]: who counts as networked, agencies' sectors, the fiscal
    year from which it runs the 重層的支援体制整備事業 (Art. 106-4; None: it does not), and which cases are
    困難事例等; with the directory in force."""

    networked_min_attended: int = 2
    networked_last_k: int = 3
    sectors: Mapping[str, str] | None = None  # agency id → welfare | non_welfare
    jusoteki_since_fiscal_year: int | None = None
    # The directory version in force: what indicators computable from it (windows, areas covered,
    # agencies by type) count, unless a manual value is given.
    directory: Directory | None = None
    # [LOCAL] Which cases are 困難事例等 for M10–M12 (seed L1959–L1960): None, the report's reading,
    # counts every case that a survey, outreach or an agency outside welfare brought (the report's 等 and
    # 呉市's example, where the survey's cases were then judged for support, L1960, do not narrow it to
    # a tier); a number counts only cases whose latest tier is at least that (2: multi-agency, 第三).
    difficult_min_tier: int | None = None

    @property
    def difficult_scope(self) -> str:
        """Which cases are 困難事例等, in the words of M10–M12's definitions."""
        return "全件（報告書の読み）" if self.difficult_min_tier is None else f"最新の層が{self.difficult_min_tier}以上"


@dataclass
class Facts:
    """The facts of one municipality for a report window, within the fiscal year `fiscal_year`."""

    fiscal_year: int
    cases: list[CaseFact]  # one per household: a case linked to an earlier one is not a case of its own
    household: dict[str, str]  # a linked case → the case its household was first received as
    contacts: list[ContactFact]
    decisions: list[DecisionFact]
    referrals: list[ReferralFact]
    all_referrals: list[ReferralFact]
    meetings: list[MeetingFact]
    promotion_history: list[MeetingFact]
    approved_plans: list[PlanVersionFact]  # plan versions approved (支援決定) in the window
    evaluations: list[MonitoringFact]  # evaluations (評価) recorded in the window
    endings: list[CaseLifeFact]  # 終結 in the window, in the order they happened
    life_at_end: list[CaseLifeFact]  # each case's last change of life before the window's end
    transfers_out: list[TransferFact]  # 転居 out of the municipality in the window, in the order they happened
    transfers_in: list[TransferFact]  # 転居 into it from another of the deployment, likewise
    # Every case of the municipality whatever its time (within the report's tier): the intake route,
    # submitter and latest tier of a household received before the window but contacted in it.
    every_case: list[CaseFact] = field(default_factory=list)


@dataclass(frozen=True)
class Measured:
    """What an indicator function found: the breakdown, and the value and shares where it has them.

    The value is the breakdown's total unless the function gives another (a median, a count of
    decisions rather than of the patterns they fired). An indicator that does not apply to the
    municipality in this fiscal year says why in `not_applicable`, and has no value at all: a 0 would
    read as "none held" where nothing was to be counted.
    """

    breakdown: Mapping[str, float]
    value: float | Literal["sum"] | None = "sum"
    shares: dict[str, float] | None = None
    not_applicable: str | None = None


Measure = Callable[[Facts, Rules], Measured]


class Computed(NamedTuple):
    """An indicator as the report shows it, with what its function found."""

    indicator: Indicator
    value: float | None
    breakdown: dict[str, float]
    shares: dict[str, float] | None
    applicable: bool


@dataclass(frozen=True)
class EventIndicator:
    """An indicator counted from events, with the function that counts it.

    Its definition may name the municipality's rules, e.g. `{rules.networked_last_k}`.
    """

    indicator: Indicator
    measure: Measure

    def computed(self, facts: Facts, rules: Rules) -> Computed:
        """The indicator over the facts, under the municipality's rules."""
        measured = self.measure(facts, rules)
        value = float(sum(measured.breakdown.values())) if measured.value == "sum" else measured.value
        definition = self.indicator.definition.format(rules=rules)
        if measured.not_applicable is not None:
            # The exports have no column of their own for it: the row's definition says why it is blank.
            definition += f"（対象外: {measured.not_applicable}）"
        shown = Indicator(
            self.indicator.id,
            self.indicator.name_ja,
            self.indicator.name_en,
            definition,
            self.indicator.source,
            self.indicator.unit,
        )
        return Computed(
            shown,
            value,
            dict(sorted(measured.breakdown.items())),
            measured.shares,
            measured.not_applicable is None,
        )


EVENT_INDICATORS: list[EventIndicator] = []


def indicator(
    id: str, name_ja: str, name_en: str, definition: str, *, unit: Unit = "count"
) -> Callable[[Measure], Measure]:
    """Register the decorated function as the measure of this indicator, after those registered before it."""

    def register(measure: Measure) -> Measure:
        EVENT_INDICATORS.append(EventIndicator(Indicator(id, name_ja, name_en, definition, unit=unit), measure))
        return measure

    return register


def compute(facts: Facts, rules: Rules, manual: Mapping[str, float] | None = None) -> list[Computed]:
    """Every event-based indicator, in the report's order, then those the directory in force counts
    (a manual value given for one of these wins over the directory's)."""
    computed = [entry.computed(facts, rules) for entry in EVENT_INDICATORS]
    return computed + [entry.computed(rules.directory, manual or {}) for entry in DIRECTORY_INDICATORS]


def _household(facts: Facts, case_id: str) -> str:
    return facts.household.get(case_id, case_id)


def _by_route(facts: Facts) -> Counter[str]:
    return Counter(c.pathway or "unknown" for c in facts.cases)


def _held(facts: Facts) -> list[MeetingFact]:
    return [m for m in facts.meetings if m.held_at is not None]


def _networked(history: list[MeetingFact], rules: Rules) -> dict[str, str]:
    """Participants who attended at least N of the last K 推進会議, with their sector."""
    recent = history[-rules.networked_last_k :]
    counts: Counter[str] = Counter()
    sector: dict[str, str] = {}
    for meeting in recent:
        for attendance in meeting.attendance:
            if attendance.get("attended"):
                counts[attendance["participant"]] += 1
                sector[attendance["participant"]] = attendance.get("sector", "welfare")
    return {p: sector[p] for p, n in counts.items() if n >= rules.networked_min_attended}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _known_cases(facts: Facts) -> dict[str, CaseFact]:
    """Every case the facts know, by id: those received in the window and those before it."""
    known = {c.case_id: c for c in facts.every_case}
    known.update((c.case_id, c) for c in facts.cases)
    return known


class Household(NamedTuple):
    """A household contacted in the window (実件数, seed L1955): its intake route, whether it was first
    received in the window (new) or before it (continuing), and who received its case."""

    route: str
    new: bool
    submitted_by: str | None


def _contacted(facts: Facts) -> dict[str, Household]:
    """The households with at least one contact (first or later) in the window: 実件数 (DOMAIN.md §6.4,
    seed L1955, L3687). A household first received in the window is new; one received before it and
    contacted again is continuing, and counts as much: supported this year, it is one of this year's 実件数.

    The route is the intake route of the household's case (相談受付経路, R10); for a continuing household
    whose case the facts do not carry, that of its first contact in the window."""
    known = _known_cases(facts)
    new = {c.case_id for c in facts.cases}
    first_contact: dict[str, str] = {}
    for contact in sorted(facts.contacts, key=lambda c: c.received_at):
        first_contact.setdefault(_household(facts, contact.case_id), contact.pathway)
    found: dict[str, Household] = {}
    for household in new | first_contact.keys():
        case = known.get(household)
        route = (case.pathway if case else None) or first_contact.get(household) or "unknown"
        found[household] = Household(route, household in new, case.submitted_by if case else None)
    return found


def _at_general_window(households: Mapping[str, Household], rules: Rules) -> dict[str, Household]:
    """The households whose case the directory's general window (総合相談窓口) received; all of them
    where no directory is in force, as there is no window to tell them by."""
    if rules.directory is None:
        return dict(households)
    window = rules.directory.municipality.general_window
    return {h: found for h, found in households.items() if found.submitted_by == window}


def _difficult(facts: Facts, rules: Rules) -> Callable[[str], bool]:
    """Whether a household's case is one of the 困難事例等 M10–M12 count, under the [LOCAL] rule
    `Rules.difficult_min_tier` (seed L1959–L1960): by the case's latest tier, every case by default."""
    least = rules.difficult_min_tier
    if least is None:
        return lambda household: True
    tiers = {case_id: case.tier for case_id, case in _known_cases(facts).items()}
    for decision in sorted(facts.decisions, key=lambda d: d.decided_at):
        # A case the facts know only by its decisions: its latest decision's tier is its tier.
        if decision.case_id not in tiers or tiers[decision.case_id] is None:
            tiers[decision.case_id] = decision.tier
    return lambda household: (tiers.get(household) or 0) >= least


def _routes(households: Iterable[Household]) -> Counter[str]:
    return Counter(h.route for h in households)


# The multi-agency program's indicators (多機関事業, DOMAIN.md §6.2) that events can count.


@indicator(
    "M1",
    "ネットワーク化された福祉分野における主体の数",
    "Networked welfare actors",
    "直近{rules.networked_last_k}回の推進会議のうち{rules.networked_min_attended}回以上出席",
)
def networked_welfare_actors(facts: Facts, rules: Rules) -> Measured:
    """M1, seed L1942–L1943: welfare actors networked, "networked" being regular attendance at the
    推進会議 (the seed's example), as the municipality's rule sets it."""
    return Measured({k: 1 for k, s in _networked(facts.promotion_history, rules).items() if s == "welfare"})


@indicator(
    "M2",
    "ネットワーク化された福祉分野以外の主体の数",
    "Networked non-welfare actors",
    "直近{rules.networked_last_k}回の推進会議のうち{rules.networked_min_attended}回以上出席",
)
def networked_non_welfare_actors(facts: Facts, rules: Rules) -> Measured:
    """M2, seed L1942: actors outside welfare networked, under M1's rule."""
    return Measured({k: 1 for k, s in _networked(facts.promotion_history, rules).items() if s != "welfare"})


@indicator(
    "M5",
    "福祉分野以外の部門の相談支援包括化に係る会議等への出席回数",
    "Attendances of municipal divisions outside welfare",
    "開催された会議への福祉分野以外の庁内部門の出席",
)
def non_welfare_division_attendances(facts: Facts, rules: Rules) -> Measured:
    """M5, seed L1947: attendances of municipal divisions outside welfare at the program's meetings, by
    kind of meeting."""
    return Measured(
        Counter(
            m.kind
            for m in _held(facts)
            for a in m.attendance
            if a.get("attended") and a.get("kind") == "municipal_division" and a.get("sector") == "non_welfare"
        )
    )


@indicator(
    "M8",
    "総合相談窓口での相談受付数（実件数）",
    "Consultations received at the general window: households",
    "名簿の総合相談窓口が受け付けた世帯のうち、期間内に相談（初回・以後）があった世帯ごとに1件、"
    "受付経路別（名簿がなければ全機関）",
)
def consultations_received(facts: Facts, rules: Rules) -> Measured:
    """M8, seed L1954–L1955: consultations received at the general window (総合相談窓口), as 実件数:
    each household with at least one contact in the window, new or continuing, once (§6.4; 能美市's
    寺井あんしん相談センター, L1955: 実件数 24, 延べ 85), by intake route. Scoped to the households the
    directory's general window received; every partner's are M8-全機関."""
    return Measured(_routes(_at_general_window(_contacted(facts), rules).values()))


@indicator(
    "M8-新規継続",
    "総合相談窓口での相談受付数（実件数）のうち新規・継続",
    "Consultations received at the general window: new and continuing households",
    "M8 の世帯を、期間内に初めて受け付けた世帯（new）と期間前から続く世帯（continuing）に分ける",
)
def consultations_received_new_or_continuing(facts: Facts, rules: Rules) -> Measured:
    """M8 split, seed L1955 (能美市: 新規 consultations reported beside 実件数): the households of M8 first
    received in the window (new) and those received before it and contacted again (continuing). A row of
    its own rather than keys beside M8's routes, so that each breakdown adds up to its value."""
    households = _at_general_window(_contacted(facts), rules).values()
    return Measured(Counter("new" if h.new else "continuing" for h in households))


@indicator(
    "M8-延べ",
    "総合相談窓口での相談受付数（延べ件数）",
    "Consultations received at the general window: all contacts",
    "M8 の世帯の初回と以後の相談をすべて数える、受付経路別（実件数と合算しない）",
)
def contacts_received(facts: Facts, rules: Rules) -> Measured:
    """M8 as 延べ件数, seed L1955 and L3687 (能美市: 実件数 24, 延べ件数 85): every contact, first and later,
    of the households M8 counts, kept apart from 実件数 and never added to it (§6.4)."""
    counted = _at_general_window(_contacted(facts), rules)
    return Measured(Counter(c.pathway for c in facts.contacts if _household(facts, c.case_id) in counted))


@indicator(
    "M8-全機関",
    "相談受付数（実件数、全機関）",
    "Consultations received by every partner: households",
    "どの機関が受け付けたかを問わず、期間内に相談（初回・以後）があった世帯ごとに1件、受付経路別",
)
def consultations_received_by_every_partner(facts: Facts, rules: Rules) -> Measured:
    """M8's second figure, seed L1954–L1955 and §6.4: 実件数 as M8 counts it, of every partner's households,
    not only the general window's, by intake route."""
    return Measured(_routes(_contacted(facts).values()))


@indicator(
    "M10",
    "調査等の実施により把握した困難事例等の数",
    "Difficult cases found by surveys",
    "把握の経緯が調査の新規ケース、受付経路別（困難事例等の範囲: {rules.difficult_scope}）",
)
def cases_found_by_surveys(facts: Facts, rules: Rules) -> Measured:
    """M10, seed L1959–L1960: 困難事例等 found by surveys (呉市's survey of the 包括), as the cases received
    in the window that a survey found, by intake route; which are 困難事例等 as M11 and M12 read it."""
    difficult = _difficult(facts, rules)
    return Measured(
        Counter(c.pathway or "unknown" for c in facts.cases if c.found_by == "survey" and difficult(c.case_id))
    )


@indicator(
    "M11",
    "アウトリーチによって把握・対応した困難事例等の数",
    "Difficult cases found or handled by outreach",
    "受付または期間内の以後の相談がアウトリーチのケース（困難事例等の範囲: {rules.difficult_scope}）",
)
def cases_reached_by_outreach(facts: Facts, rules: Rules) -> Measured:
    """M11, seed L1959: 困難事例等 found or handled by outreach, at their first consultation or a later one
    in the window, once per household; which are 困難事例等 as M10 and M12 read it."""
    difficult = _difficult(facts, rules)
    cases = {c.case_id for c in facts.cases if c.found_by == "outreach"} | {
        _household(facts, c.case_id) for c in facts.contacts if c.found_by == "outreach"
    }
    counted = {case for case in cases if difficult(case)}
    return Measured({"cases": len(counted)} if counted else {})


@indicator(
    "M12",
    "福祉関係機関以外からの困難事例等の受付件数",
    "Difficult cases from outside welfare agencies",
    "提出機関が福祉分野以外の新規ケース、受付経路別（困難事例等の範囲: {rules.difficult_scope}）",
)
def difficult_cases_from_outside_welfare(facts: Facts, rules: Rules) -> Measured:
    """M12, seed L1959: 困難事例等 received from agencies outside welfare, as the cases received in the
    window that such an agency submitted, by intake route; which are 困難事例等 as M10 and M11 read it."""
    sectors = rules.sectors or {}
    difficult = _difficult(facts, rules)
    return Measured(
        Counter(
            c.pathway or "unknown"
            for c in facts.cases
            if sectors.get(c.submitted_by or "") == "non_welfare" and difficult(c.case_id)
        )
    )


@indicator(
    "M13",
    "多機関が連携した対応を実施した事例等の数",
    "Cases with a case meeting of ≥2 agencies",
    "2機関以上が出席した個別事例の会議（ケース会議・支援会議・重層的支援会議）が開かれたケース",
)
def multi_agency_cases(facts: Facts, rules: Rules) -> Measured:
    """M13, seed L1964–L1965: cases handled by several agencies, by the seed's proxy (L1964: ケース会議の
    開催等) of a meeting on the case attended by at least two agencies. The 支援会議 and 重層的支援会議 of
    the 2020 amendment (LAW-2020.md §3) are such meetings too; the 推進会議 discusses no single case."""
    cases = {
        _household(facts, m.case_id)
        for m in _held(facts)
        if m.kind in CASE_MEETING_KINDS
        and m.case_id
        and len({a["participant"] for a in m.attendance if a.get("attended") and a.get("kind") == "agency"}) >= 2
    }
    return Measured({"cases": len(cases)} if cases else {})


# The community-strength program's indicator (地域力事業, DOMAIN.md §6.3) that events can count.


@indicator(
    "R10",
    "相談受付経路別の事例数・割合",
    "Cases by intake route",
    "新規ケースの受付経路（当事者・家族地域・専門機関・行政・知人）",
)
def cases_by_intake_route(facts: Facts, rules: Rules) -> Measured:
    """R10, seed L2018–L2031: cases and their shares (in percent) by intake route."""
    by_route = _by_route(facts)
    total = sum(by_route.values())
    shares = {route: round(100 * n / total, 1) for route, n in sorted(by_route.items())} if total else {}
    return Measured(by_route, shares=shares)


# The 重層的支援体制整備事業's meetings (LAW-2020.md §3, §6): counted by the municipalities running the 事業.


def _unless_running(facts: Facts, rules: Rules) -> Measured | None:
    """Nothing to count, and why, if the municipality does not run the 事業 in the report's fiscal year."""
    since = rules.jusoteki_since_fiscal_year
    if since is None:
        return Measured({}, value=None, not_applicable="重層的支援体制整備事業を実施していない")
    if facts.fiscal_year < since:
        return Measured({}, value=None, not_applicable=f"重層的支援体制整備事業の実施は{since}年度から")
    return None


def _held_while_running(facts: Facts, rules: Rules, kind: MeetingKind) -> Measured:
    """Meetings of this kind held in the window, if the municipality runs the 事業 in the report's year."""
    if (not_running := _unless_running(facts, rules)) is not None:
        return not_running
    return Measured(Counter(m.kind for m in _held(facts) if m.kind == kind))


@indicator(
    "JUSO-SUPPORT-MEETINGS",
    "支援会議の開催回数",
    "Support meetings (支援会議) held",
    "開催された支援会議（社会福祉法第106条の6）; 重層的支援体制整備事業を実施する年度のみ",
)
def support_meetings_held(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §3 and §6 (last bullet): 支援会議 (Art. 106-6) held, which municipalities running the
    重層的支援体制整備事業 (Art. 106-4) report; not applicable in a fiscal year they do not run it."""
    return _held_while_running(facts, rules, "support_meeting")


@indicator(
    "JUSO-PLAN-MEETINGS",
    "重層的支援会議の開催回数",
    "Plan meetings (重層的支援会議) held",
    "開催された重層的支援会議（支援プランの決定・評価・終結）; 重層的支援体制整備事業を実施する年度のみ",
)
def plan_meetings_held(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §3 and §6 (last bullet): 重層的支援会議 held (支援決定, plan review, 終結), which
    municipalities running the 重層的支援体制整備事業 report; not applicable in a fiscal year they do not."""
    return _held_while_running(facts, rules, "plan_meeting")


# The 事業's 支援プラン (LAW-2020.md §4): approved by a 支援決定, then monitored and evaluated.


@indicator(
    "JUSO-SUPPORT-DECISIONS",
    "支援決定の件数（支援プランの承認）",
    "Support decisions (支援決定): plans approved",
    "重層的支援会議で承認された支援プランの版（initial: 初回、revision: 見直し）; "
    "重層的支援体制整備事業を実施する年度のみ",
)
def support_decisions(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §4 (steps 2–3) and §6: a 支援プラン version approved at a 重層的支援会議 is a 支援決定,
    by first plan and revision. The 支援決定 is the 事業's own (its 多機関協働, Art. 106-4), so in a fiscal
    year the municipality does not run the 事業 the indicator does not apply, rather than read 0."""
    if (not_running := _unless_running(facts, rules)) is not None:
        return not_running
    return Measured(Counter("initial" if p.version == 1 else "revision" for p in facts.approved_plans))


@indicator(
    "JUSO-CASES-WITH-PLAN",
    "支援プランが決定されたケース数",
    "Cases with a plan approved",
    "期間内に支援決定があったケース（世帯ごとに1件）; 重層的支援体制整備事業を実施する年度のみ",
)
def cases_with_plan(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §6 (last bullet): the cases with a plan that municipalities running the 事業 count,
    as the cases (one per household, DOMAIN.md §6.4) whose plan a 支援決定 approved in the window; not
    applicable where the 事業 is not run, for the reason JUSO-SUPPORT-DECISIONS gives."""
    if (not_running := _unless_running(facts, rules)) is not None:
        return not_running
    cases = {_household(facts, p.case_id) for p in facts.approved_plans}
    return Measured({"cases": len(cases)} if cases else {})


@indicator(
    "JUSO-EVALUATIONS-ON-TIME",
    "期限内に評価された支援プランの割合（%）",
    "Plan evaluations on time (%)",
    "期間内に記録された評価のうち、評価予定日までに行われたものの割合; 重層的支援体制整備事業を実施する年度のみ",
    unit="percent",
)
def evaluations_on_time(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §4 (step 4) and §6: plans are evaluated (評価) periodically, the 推進員's (エ) (DOMAIN.md
    §4.2, seed L3423–L3425), and municipalities running the 事業 count plans reviewed. The value is the
    share in percent of the evaluations recorded in the window that were on time, its breakdown the
    on-time and late ones; no value without an evaluation. Not applicable where the 事業 is not run: the
    plans evaluated are the 支援プラン its 支援決定 approved."""
    if (not_running := _unless_running(facts, rules)) is not None:
        return not_running
    total = len(facts.evaluations)
    if not total:
        return Measured({}, value=None)
    on_time = sum(e.on_time for e in facts.evaluations)
    return Measured({"on_time": on_time, "late": total - on_time}, value=round(100 * on_time / total, 1))


# A case's life after routing (LAW-2020.md §4, step 5): 終結 and 見守り, in every municipality.


@indicator(
    "CASES-ENDED",
    "終結したケース数（理由別）",
    "Cases ended (終結) by reason",
    "期間内に終結したケース（見守りの継続を含む、見守りの終了は数えない）; 世帯ごとに1件、期間内の最後の終結の理由で",
)
def cases_ended(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §4 (step 5) and §6: coordination ends (終結) with a coded reason, and municipalities
    running the 事業 count cases ended; here by reason. It applies to every municipality, whether or not
    it runs the 事業: 終結件数 were counted before the 事業 existed (彦根市's target, DOMAIN.md §6.1, seed
    L1074), and a 転居 out of the municipality ends a case (moved_away) wherever it happens. A case
    ended, reopened and ended again in the window counts once, under its last reason; the end of a
    見守り that followed a 終結 is no 終結 of its own."""
    last = {_household(facts, change.case_id): change.reason or "unknown" for change in facts.endings}
    return Measured(Counter(last.values()))


@indicator(
    "CASES-WATCHING",
    "見守り中のケース数（期間末）",
    "Cases under 見守り at the period's end",
    "期間末に終結後の見守りが続いているケース; 世帯ごとに1件、主担当別",
)
def cases_watching(facts: Facts, rules: Rules) -> Measured:
    """LAW-2020.md §4 (step 5) and §6: after a 終結 a 主担当 keeps accompanying the household (伴走) and
    見守り may continue. The cases whose last change before the window's end left them watching (a
    later contact that reopened one takes it out), by 主担当; every municipality, as CASES-ENDED."""
    watching = {
        _household(facts, change.case_id): change.main_agency or "unknown"
        for change in facts.life_at_end
        if change.state == "watching"
    }
    return Measured(Counter(watching.values()))


# Operational measures: not asked for by the report, kept for the people who run the network.


@indicator("OPS-DECISIONS", "振り分け決定件数（層別）", "Routing decisions by tier", "決定（エスカレーション含む）")
def routing_decisions(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: routing decisions (escalations included) by tier, per
    decision: an escalated case counts in each tier it was decided in (per case: OPS-CASE-TIERS)."""
    return Measured(Counter(f"tier{d.tier}" for d in facts.decisions))


@indicator(
    "OPS-CASE-TIERS",
    "振り分けられたケース数（最新の層別）",
    "Cases routed, by latest tier",
    "期間内に振り分け決定があったケース（世帯ごとに1件）、期間内の最後の決定の層で",
)
def cases_by_latest_tier(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: the cases (households, §6.4) with a routing decision in
    the window, each once under its latest tier, beside OPS-DECISIONS, where an escalated case counts in
    every tier it was decided in."""
    # The last decision in the window sets the tier: a later one, in a later report, does not rewrite this.
    latest = {_household(facts, d.case_id): d.tier for d in sorted(facts.decisions, key=lambda d: d.decided_at)}
    return Measured(Counter(f"tier{tier}" for tier in latest.values()))


@indicator("OPS-PATTERNS", "該当した類型", "Patterns fired", "決定で該当した類型の延べ数")
def patterns_fired(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: the patterns decisions fired; the value counts decisions."""
    return Measured(Counter(p for d in facts.decisions for p in d.patterns), value=float(len(facts.decisions)))


@indicator("OPS-REFERRALS", "つなぎ（紹介）依頼件数", "Referrals requested", "依頼されたつなぎ")
def referrals_requested(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: referrals requested, by tier."""
    return Measured(Counter(f"tier{r.tier}" for r in facts.referrals))


@indicator(
    "OPS-TIME-TO-ACCEPT",
    "初回受諾までの時間（時間）",
    "Hours from consultation to first acceptance",
    "p50 を値とする",
    unit="hours",
)
def hours_to_first_acceptance(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: hours from a case's consultation to its first accepted
    referral, the median as the value."""
    waits = [
        (c.first_accepted_at - c.received_at).total_seconds() / 3600
        for c in facts.cases
        if c.first_accepted_at is not None and c.received_at is not None
    ]
    if not waits:
        return Measured({}, value=None)
    median = round(_percentile(waits, 0.5), 2)
    return Measured({"p50": median, "p90": round(_percentile(waits, 0.9), 2)}, value=median)


@indicator("OPS-REROUTES", "再振り分け件数", "Re-routes", "辞退後の再振り分け; per_case はケースあたり")
def reroutes(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: referrals re-routed after a rejection, and per case."""
    rerouted = [r for r in facts.referrals if r.rule_id in {"reroute", "reroute_to_lead"}]
    per_case = {"per_case": round(len(rerouted) / len(facts.cases), 3)} if facts.cases else None
    return Measured({"reroutes": len(rerouted)}, shares=per_case)


@indicator(
    "OPS-ESCALATIONS",
    "エスカレーション件数",
    "Escalations",
    "期限超過による推進員へのエスカレーションと、要請によるエスカレーション",
)
def escalations(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: escalations to the lead past a deadline, and those
    asked for (a backup, the prefecture's support)."""
    return Measured(
        Counter(
            [
                *("deadline" for r in facts.referrals if r.rule_id == "escalation"),
                *(d.kind for d in facts.decisions if d.kind in {"backup", "prefecture_support"}),
            ]
        )
    )


@indicator(
    "OPS-DEADLINE-BREACHES", "受諾期限の超過件数", "Referrals not accepted in time", "督促・エスカレーションの段階別"
)
def deadline_breaches(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: referrals not accepted in time, by stage reached."""
    return Measured(Counter(stage for r in facts.referrals for stage in r.overdue_stages))


@indicator(
    "OPS-OPEN-CASELOAD", "対応中の依頼（層・機関別）", "Open referrals by tier and agency (now)", "現在進行中の依頼"
)
def open_caseload(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: live referrals now, whatever the window, by tier and agency."""
    return Measured(
        Counter(
            f"tier{r.tier}:{r.agency_id}"
            for r in facts.all_referrals
            if r.status in LIVE_REFERRAL_STATUSES and r.agency_id
        )
    )


@indicator("OPS-RESOURCE-GAPS", "社会資源の不足（種別）", "Resource gaps by type", "決定で報告された不足")
def resource_gaps(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: the resource gaps decisions reported, by partner type."""
    return Measured(Counter(g for d in facts.decisions for g in d.resource_gaps))


@indicator(
    "OPS-CASE-MEETINGS",
    "ケース会議 設定件数",
    "Case meetings scheduled",
    "設定されたケース会議（開催日時の期間に計上、変更後の日時で1回、取消を除く）",
)
def case_meetings_scheduled(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: case meetings scheduled, by tier, each once in the
    window of its latest time, cancelled ones left out."""
    return Measured(
        Counter(f"tier{m.tier}" for m in facts.meetings if m.kind == "case_meeting" and m.scheduled_at is not None)
    )


@indicator(
    "OPS-MEETINGS-HELD", "会議の開催回数", "Meetings held", "ケース会議・支援会議・重層的支援会議・推進会議（種別ごと）"
)
def meetings_held(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: meetings held, by kind (ケース会議, 支援会議,
    重層的支援会議, 推進会議), whether or not the municipality runs the 重層的支援体制整備事業."""
    return Measured(Counter(m.kind for m in _held(facts)))


@indicator(
    "OPS-TRANSFERS-OUT",
    "転出したケース数（転居）",
    "Cases moved away (転居)",
    "他の市町村へ転居したケース（within_deployment: 同じ運用内の市町村へ引継ぎ、outside_deployment: 運用外へ）",
)
def transfers_out(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: cases (households) that moved away in the window, to a
    municipality of this deployment (handed on as a case there) or outside it."""
    moved = {
        _household(facts, t.case_id): "within_deployment" if t.to_case_id is not None else "outside_deployment"
        for t in facts.transfers_out
    }
    return Measured(Counter(moved.values()))


@indicator(
    "OPS-TRANSFERS-IN",
    "転入したケース数（転居）",
    "Cases moved in (転居)",
    "同じ運用内の他の市町村から転居して引き継いだケース（転出元の市町村コード別）",
)
def transfers_in(facts: Facts, rules: Rules) -> Measured:
    """Operational measure, no line of the report: cases handed on to this municipality in the window by
    another of the deployment when the household moved here, by the municipality it came from."""
    moved = {_household(facts, t.to_case_id): t.from_municipality for t in facts.transfers_in if t.to_case_id}
    return Measured(Counter(moved.values()))


# Counted from the directory in force (master data, DOMAIN.md §6.2–6.3 source MD), unless entered by hand.


@dataclass(frozen=True)
class DirectoryIndicator:
    """An indicator the directory can count; a manual value entered for it wins (the municipality may
    know windows or places its directory does not list)."""

    indicator: Indicator
    count: Callable[[Directory], float | None]

    def computed(self, directory: Directory | None, manual: Mapping[str, float]) -> Computed:
        """The manual value if one was given, else the directory's count (None without a directory)."""
        given = manual.get(self.indicator.id)
        source = "manual" if given is not None else "directory"
        value = given if given is not None else (self.count(directory) if directory is not None else None)
        shown = Indicator(
            self.indicator.id,
            self.indicator.name_ja,
            self.indicator.name_en,
            self.indicator.definition,
            source,
            self.indicator.unit,
        )
        return Computed(shown, value, {}, None, True)


def _general_windows(directory: Directory) -> list[Agency]:
    return [directory.agency(directory.municipality.general_window)]


def _tier1_places(directory: Directory) -> list[Agency]:
    return sorted((a for a in directory.agencies if TIER1_PLACE_ROLE in a.roles), key=lambda a: a.id)


def _coverage(directory: Directory, agencies: list[Agency]) -> float | None:
    """The share in percent of the municipality's smallest areas (those no other area lies within) that
    the agencies serve: an area served covers the areas within it; an agency serving the whole
    municipality (or prefecture) covers all. None if the directory has no areas."""
    parents = {area.parent for area in directory.municipality.areas}
    leaves = [area.id for area in directory.municipality.areas if area.id not in parents]
    if not leaves:
        return None
    if any(agency.scope != "area" for agency in agencies):
        return 100.0
    served = {area_id for agency in agencies for area_id in agency.areas}
    covered = [leaf for leaf in leaves if any(a.id in served for a in directory.ancestors(leaf))]
    return round(100 * len(covered) / len(leaves), 1)


# M7, seed L1954–L1955, and R8, seed L2013–L2014: each "the number, and the share of the area covered",
# two values under two ids (the second with the suffix -カバー率). R6 (activity hubs, L1997) and R14 (newly
# involved actors, L2042) stay entered by hand: the directory lists no hubs, nor when an agency joined.
DIRECTORY_INDICATORS = (
    DirectoryIndicator(
        Indicator(
            "M7",
            "総合相談窓口の設置数",
            "General windows",
            "名簿の総合相談窓口の数（設置数・カバー率の二項目のうち設置数）; 入力値があればそれを用いる",
        ),
        lambda directory: float(len(_general_windows(directory))),
    ),
    DirectoryIndicator(
        Indicator(
            "M7-カバー率",
            "総合相談窓口がカバーしている地域の割合（%）",
            "Share of areas the general windows cover (%)",
            "名簿の最小単位の地域のうち総合相談窓口が担当する地域の割合（二項目のうちカバー率）; "
            "入力値があればそれを用いる",
            unit="percent",
        ),
        lambda directory: _coverage(directory, _general_windows(directory)),
    ),
    DirectoryIndicator(
        Indicator(
            "R8",
            "丸ごと受け止める場の数",
            "Places that receive consultations whole",
            "名簿で丸ごと受け止める場（tier1_place）とされた機関の数（数・カバー率の二項目のうち数）; "
            "入力値があればそれを用いる",
        ),
        lambda directory: float(len(_tier1_places(directory))),
    ),
    DirectoryIndicator(
        Indicator(
            "R8-カバー率",
            "丸ごと受け止める場がカバーしている地域の割合（%）",
            "Share of areas the places cover (%)",
            "名簿の最小単位の地域のうち丸ごと受け止める場が担当する地域の割合（二項目のうちカバー率）; "
            "入力値があればそれを用いる",
            unit="percent",
        ),
        lambda directory: _coverage(directory, _tier1_places(directory)),
    ),
)


# Entered, not counted: surveys, master data and figures only the municipality has. R3 (seed L1990) and
# R6 (L1997) have two parts, each entered under its own id (the second with a suffix: -参加者数, -カバー率).
MANUAL = (
    Indicator(
        "M3",
        "関係機関の情報共有ルール・ツール等の整備件数",
        "Information-sharing rules and tools",
        "実績を入力",
        "manual",
    ),
    Indicator(
        "M4",
        "関係機関における相互のネットワーク構築状況に関する認識",
        "Agencies' perception of the network",
        "アンケート結果",
        "manual",
    ),
    Indicator(
        "M6",
        "庁内関係部門における多機関連携の取組に対する満足度",
        "Internal divisions' satisfaction",
        "庁内アンケート",
        "manual",
    ),
    Indicator("M9", "総合相談窓口に対する認知度", "Awareness of the general windows", "住民アンケート", "manual"),
    Indicator(
        "M14",
        "多機関が連携した事例への対応に関する関係機関の満足度",
        "Agencies' satisfaction with collaborative cases",
        "アンケート",
        "manual",
    ),
    Indicator(
        "M15",
        "多機関連携により新たに創出された資源・財源等の数",
        "New resources and funding created",
        "実績を入力",
        "manual",
    ),
    *(
        Indicator(f"R{n}", name, name_en, "入力値", "manual")
        for n, name, name_en in (
            (
                1,
                "住民等における地域福祉等に対する参加意識の向上に向けた取組の実施回数",
                "Sessions to raise participation awareness",
            ),
            (2, "住民等における地域福祉等に対する参加意識の向上", "Residents' participation awareness"),
            (3, "地域福祉に取り組む担い手増加に向けた取組の実施回数", "Events and trainings for supporters"),
            (
                "3-参加者数",
                "地域福祉に取り組む担い手増加に向けた取組の参加者数",
                "Participants in events and trainings for supporters",
            ),
            (4, "地域福祉に取り組む担い手の増加数", "Increase in supporters"),
            (5, "地域福祉に取り組む担い手の活動実績", "Supporters' activity record"),
            (6, "活動拠点の数", "Activity hubs"),
            ("6-カバー率", "活動拠点がカバーしている地域の割合（%）", "Share of areas activity hubs cover (%)"),
            (7, "活動拠点の利用状況", "Hub usage"),
            (9, "丸ごと受け止める場の運営に参画する住民ボランティア・団体数", "Volunteers running the places"),
            (11, "地域生活課題に関する検討への参加者数", "Participants in issue discussions"),
            (12, "新たに認識された課題の種類・数", "Newly recognised issues"),
            (13, "課題解決に向けた取組の実施件数", "Issue-solving initiatives"),
            (14, "課題解決に向けた取組にあたり新たに巻き込んだ主体の数", "Newly involved actors"),
        )
    ),
)
# What may be entered by hand: the manual indicators, and those the directory counts (the entry wins).
MANUAL_IDS = frozenset(i.id for i in (*MANUAL, *(entry.indicator for entry in DIRECTORY_INDICATORS)))
