"""The indicators: the catalog of outcome indicators (成果把握項目, DOMAIN.md §6.2–6.3) and the
operational measures, each event-based one a small function over a report window's facts.

Every function is registered with its catalog entry by `@indicator`, in the order the report lists
them; its docstring cites the line of the source report (the seed, by the line numbers DOMAIN.md §6
gives) that it implements, the section of LAW-2020.md for what the 2020 amendment added, or says that
it is an operational measure the report does not ask for.
"""

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
from shared.directory import Directory
from shared.events import LIVE_REFERRAL_STATUSES, MeetingKind

Unit = Literal["count", "percent", "hours"]
# The states a 終結 of coordination leaves a case in: closed, or closed with 見守り continuing.
ENDED = frozenset({"closed", "watching"})


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
    """A municipality's counting choices [LOCAL]: who counts as networked, agencies' sectors, and the
    fiscal year from which it runs the 重層的支援体制整備事業 (Art. 106-4; None: it does not)."""

    networked_min_attended: int = 2
    networked_last_k: int = 3
    sectors: Mapping[str, str] | None = None  # agency id → welfare | non_welfare
    jusoteki_since_fiscal_year: int | None = None
    # The directory version in force: what indicators computable from it (windows, areas covered,
    # agencies by type) count, unless a manual value is given.
    directory: Directory | None = None


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


def compute(facts: Facts, rules: Rules) -> list[Computed]:
    """Every event-based indicator, in the report's order."""
    return [entry.computed(facts, rules) for entry in EVENT_INDICATORS]


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
    "Consultations received: distinct cases",
    "新規ケース（世帯）ごとに1件",
)
def consultations_received(facts: Facts, rules: Rules) -> Measured:
    """M8, seed L1954–L1955: consultations received, as 実件数 (one per household; §6.4, seed L1955,
    L3687), by intake route."""
    return Measured(_by_route(facts))


@indicator(
    "M8-延べ",
    "総合相談窓口での相談受付数（延べ件数）",
    "Consultations received: all contacts",
    "初回と以後の相談をすべて数える（実件数と合算しない）",
)
def contacts_received(facts: Facts, rules: Rules) -> Measured:
    """M8 as 延べ件数, seed L1955 and L3687 (能美市: 実件数 24, 延べ件数 85): every contact, first and later,
    kept apart from 実件数 and never added to it (§6.4)."""
    return Measured(Counter(c.pathway for c in facts.contacts))


@indicator("M10", "調査等の実施により把握した困難事例等の数", "Cases found by surveys", "把握の経緯が調査のケース")
def cases_found_by_surveys(facts: Facts, rules: Rules) -> Measured:
    """M10, seed L1959–L1960: cases found by surveys, by intake route."""
    return Measured(Counter(c.pathway or "unknown" for c in facts.cases if c.found_by == "survey"))


@indicator(
    "M11",
    "アウトリーチによって把握・対応した困難事例等の数",
    "Cases found or handled by outreach",
    "受付または以後の相談がアウトリーチのケース",
)
def cases_reached_by_outreach(facts: Facts, rules: Rules) -> Measured:
    """M11, seed L1959: cases found or handled by outreach, at their first consultation or a later one."""
    cases = {c.case_id for c in facts.cases if c.found_by == "outreach"} | {
        _household(facts, c.case_id) for c in facts.contacts if c.found_by == "outreach"
    }
    return Measured({"cases": len(cases)} if cases else {})


@indicator(
    "M12",
    "福祉関係機関以外からの困難事例等の受付件数",
    "Difficult cases from outside welfare agencies",
    "tier 2/3 のケースで、提出機関が福祉分野以外",
)
def difficult_cases_from_outside_welfare(facts: Facts, rules: Rules) -> Measured:
    """M12, seed L1959: difficult (tier 2/3) cases submitted by agencies outside welfare, by intake route."""
    sectors = rules.sectors or {}
    difficult = {_household(facts, d.case_id) for d in facts.decisions if d.tier >= 2}
    return Measured(
        Counter(
            c.pathway or "unknown"
            for c in facts.cases
            if c.case_id in difficult and sectors.get(c.submitted_by or "") == "non_welfare"
        )
    )


@indicator(
    "M13",
    "多機関が連携した対応を実施した事例等の数",
    "Cases with a case meeting of ≥2 agencies",
    "2機関以上が出席したケース会議が開かれたケース",
)
def multi_agency_cases(facts: Facts, rules: Rules) -> Measured:
    """M13, seed L1964–L1965: cases handled by several agencies, by the seed's proxy (L1964) of a case
    meeting attended by at least two agencies."""
    cases = {
        _household(facts, m.case_id)
        for m in _held(facts)
        if m.kind == "case_meeting"
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
    """Operational measure, no line of the report: routing decisions (escalations included) by tier."""
    return Measured(Counter(f"tier{d.tier}" for d in facts.decisions))


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


# Entered, not counted: surveys, master data and figures only the municipality has.
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
    Indicator("M7", "総合相談窓口の設置数・カバー率", "General windows and area covered", "マスタ", "manual"),
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
            (1, "参加意識の向上に向けた取組の実施回数", "Sessions to raise participation awareness"),
            (2, "住民等における参加意識の向上", "Residents' participation awareness"),
            (3, "担い手増加に向けた取組の実施回数・参加者数", "Events and trainings for supporters"),
            (4, "地域福祉に取り組む担い手の増加数", "Increase in supporters"),
            (5, "担い手の活動実績", "Supporters' activity record"),
            (6, "活動拠点の数・カバー率", "Activity hubs and area covered"),
            (7, "活動拠点の利用状況", "Hub usage"),
            (8, "丸ごと受け止める場の数・カバー率", "Receive-whole places and area covered"),
            (9, "場の運営に参画する住民ボランティア・団体数", "Volunteers running the places"),
            (11, "地域生活課題に関する検討への参加者数", "Participants in issue discussions"),
            (12, "新たに認識された課題の種類・数", "Newly recognised issues"),
            (13, "課題解決に向けた取組の実施件数", "Issue-solving initiatives"),
            (14, "新たに巻き込んだ主体の数", "Newly involved actors"),
        )
    ),
)
MANUAL_IDS = frozenset(i.id for i in MANUAL)
