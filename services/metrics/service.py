"""Metrics' logic: events become facts (idempotently, in any order), and the outcome indicators
(成果把握項目, DOMAIN.md §6) are computed from the facts per municipality and fiscal year (年度)."""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, SQLModel, col, select

from services.metrics.models import (
    CaseFact,
    ContactFact,
    DecisionFact,
    HouseholdLinkFact,
    IndicatorReport,
    IndicatorValue,
    ManualValue,
    MeetingFact,
    ReferralFact,
    Target,
)
from shared import bulk
from shared.db import TransactionState, rows_with
from shared.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    HouseholdLinked,
    ReferralOverdue,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
)
from shared.vocabulary import FoundBy, Pathway

JST = ZoneInfo("Asia/Tokyo")
REIWA_FIRST_YEAR = 2019
PREFETCH_CHUNK = 1000  # keys per IN list (well under SQLite's and PostgreSQL's parameter limits)
LIVE = frozenset({"requested", "received", "accepted", "in_progress", "on_hold"})
NEVER = datetime.max.replace(tzinfo=UTC)  # a case whose consultation has not arrived sorts last


def fiscal_year(moment: datetime) -> int:
    """The Japanese fiscal year (April–March) of a moment, in Japan time."""
    local = moment.astimezone(JST)
    return local.year if local.month >= 4 else local.year - 1


def fiscal_year_label(year: int) -> str:
    """E.g. 2025 → '令和7年度 (FY2025)'."""
    reiwa = year - REIWA_FIRST_YEAR + 1
    era = "令和元年度" if reiwa == 1 else f"令和{reiwa}年度"
    return f"{era} (FY{year})"


# --- events → facts -------------------------------------------------------------------------------


def count(session: Session, envelope: Envelope[EventData]) -> None:
    """Record what an event says as facts; the same event twice changes nothing."""
    data, code = envelope.data, envelope.municipalitycode
    match data:
        case ConsultationReceived():
            case = _case(session, data.case_id, code)
            consultation = data.consultation
            case.received_at, case.submitted_by = data.received_at, data.submitted_by
            case.pathway, case.found_by = consultation.pathway.value, consultation.found_by.value
            _contact(
                session,
                data.consultation_id,
                data.case_id,
                code,
                data.received_at,
                consultation.pathway,
                consultation.found_by,
                True,
            )
        case ContactRecorded():
            _contact(session, data.contact_id, data.case_id, code, data.received_at, data.pathway, data.found_by, False)
        case RoutingDecided():
            _put(
                session,
                DecisionFact,
                data.decision_id,
                case_id=data.case_id,
                municipality_code=code,
                tier=data.tier,
                kind=data.kind,
                patterns=list(data.patterns),
                resource_gaps=list(data.resource_gaps),
                decided_at=data.decided_at,
            )
            case = _case(session, data.case_id, code)
            if data.sequence >= case.decision_sequence:
                case.tier, case.decision_sequence = data.tier, data.sequence
        case ReferralRequested():
            referral = _referral(session, data.referral_id, data.case_id, code)
            referral.agency_id, referral.tier, referral.rule_id = data.agency_id, data.tier, data.rule_id
            referral.requested_at = data.requested_at
        case ReferralStatusChanged():
            referral = _referral(session, data.referral_id, data.case_id, code)
            if _later_change(referral, data):
                referral.status, referral.status_at = data.to_status, data.changed_at
                referral.version = max(referral.version, data.version)
            if data.to_status == "accepted":
                case = _case(session, data.case_id, code)
                if case.first_accepted_at is None or data.changed_at < case.first_accepted_at:
                    case.first_accepted_at = data.changed_at
        case ReferralOverdue():
            referral = _referral(session, data.referral_id, data.case_id, code)
            referral.overdue_stages = sorted({*referral.overdue_stages, data.stage})
        case ConferenceScheduled():
            meeting = _meeting(session, data.meeting_id, code, data.kind, data.case_id)
            meeting.tier, meeting.scheduled_at = data.tier, envelope.time
            _set_start(meeting, data.starts_at, envelope.time)
        case ConferenceRescheduled():
            meeting = _meeting(session, data.meeting_id, code, data.kind, data.case_id)
            _set_start(meeting, data.starts_at, envelope.time)
        case ConferenceCancelled():
            meeting = _meeting(session, data.meeting_id, code, data.kind, data.case_id)
            meeting.cancelled_at = envelope.time
        case ConferenceHeld():
            meeting = _meeting(session, data.meeting_id, code, data.kind, data.case_id)
            meeting.held_at = data.held_at
            meeting.attendance = [a.model_dump() for a in data.attendance]
        case HouseholdLinked():
            link = _fact(
                session,
                HouseholdLinkFact,
                data.match_id,
                case_id=data.case_id,
                linked_case_id=data.linked_case_id,
                municipality_code=code,
                linked=data.linked,
                decided_at=data.decided_at,
            )
            if data.decided_at >= link.decided_at:
                link.linked, link.decided_at = data.linked, data.decided_at


def _later_change(referral: ReferralFact, data: ReferralStatusChanged) -> bool:
    """True when the change comes after the one the fact holds, so its status is the referral's now.

    The outbox may publish a change committed late after a later one, and instances' clocks differ,
    so versions order a referral's changes; changes of before versions (0) fall back to their times.
    """
    if data.version and referral.version:
        return data.version > referral.version
    return referral.status_at is None or data.changed_at >= referral.status_at


def _set_start(meeting: MeetingFact, starts_at: datetime | None, as_of: datetime) -> None:
    # The two topics are read independently, so the latest published time wins, not the last delivered.
    if meeting.starts_at_as_of is None or as_of >= meeting.starts_at_as_of:
        meeting.starts_at, meeting.starts_at_as_of = starts_at, as_of


def _contact(
    session: Session,
    contact_id: str,
    case_id: str,
    code: str,
    at: datetime,
    pathway: Pathway,
    found_by: FoundBy,
    opening: bool,
) -> None:
    _put(
        session,
        ContactFact,
        contact_id,
        case_id=case_id,
        municipality_code=code,
        received_at=at,
        pathway=pathway.value,
        found_by=found_by.value,
        opening=opening,
    )


def _case(session: Session, case_id: str, code: str) -> CaseFact:
    return _fact(session, CaseFact, case_id, municipality_code=code)


def _referral(session: Session, referral_id: str, case_id: str, code: str) -> ReferralFact:
    return _fact(session, ReferralFact, referral_id, case_id=case_id, municipality_code=code)


def _meeting(session: Session, meeting_id: str, code: str, kind: str, case_id: str | None) -> MeetingFact:
    return _fact(session, MeetingFact, meeting_id, municipality_code=code, kind=kind, case_id=case_id)


FactT = TypeVar("FactT", bound=SQLModel)


def _put(session: Session, model: type[SQLModel], key: str, **values: Any) -> None:
    """Store the fact with these values under `key`, replacing the one this transaction or the database had."""
    kept = _fact(session, model, key, **values)
    for name, value in values.items():
        setattr(kept, name, value)


_FactKey = tuple[type[SQLModel], str]
_MADE: TransactionState[dict[_FactKey, SQLModel]] = TransactionState("metrics_facts", dict)
_ABSENT: TransactionState[set[_FactKey]] = TransactionState("metrics_facts_absent", set)


def _fact(session: Session, model: type[FactT], key: str, **new: Any) -> FactT:
    """The fact with this key, whether made earlier in this transaction, stored, or new (made of `new`).

    A batch of events is applied in one transaction; looking a fact up must not flush the facts the
    batch made before it, and a fact made earlier in the batch is not yet in the database, so the
    transaction keeps its own index of them. Facts that `prefetch` read (or found missing) for the
    batch are not asked for again. A stored fact is the ORM's object, and what is set on it is
    written at the commit. A new fact is a `bulk.Draft` with the model's fields as attributes, inserted
    with the batch's other new facts at the commit: thousands of them a batch, each as an ORM object
    was most of what the service spent.
    """
    made = _MADE.get(session)
    found = made.get((model, key))
    if found is None:
        if (model, key) not in (_ABSENT.peek(session) or ()):
            with session.no_autoflush:
                found = session.get(model, key)
        if found is None:
            key_name = sa_inspect(model).primary_key[0].key
            # A draft reads and sets the same fields as the model, so it stands in for one.
            found = cast(SQLModel, bulk.add_draft(session, model, **{key_name: key}, **new))
        made[(model, key)] = found
    return found  # type: ignore[return-value]


def _fact_keys(data: EventData) -> Iterator[tuple[type[SQLModel], str]]:
    """The facts `count` reads for an event, by model and key."""
    match data:
        case ConsultationReceived():
            yield CaseFact, data.case_id
            yield ContactFact, data.consultation_id
        case ContactRecorded():
            yield ContactFact, data.contact_id
        case RoutingDecided():
            yield DecisionFact, data.decision_id
            yield CaseFact, data.case_id
        case ReferralRequested() | ReferralOverdue():
            yield ReferralFact, data.referral_id
        case ReferralStatusChanged():
            yield ReferralFact, data.referral_id
            if data.to_status == "accepted":
                yield CaseFact, data.case_id
        case ConferenceScheduled() | ConferenceRescheduled() | ConferenceCancelled() | ConferenceHeld():
            yield MeetingFact, data.meeting_id
        case HouseholdLinked():
            yield HouseholdLinkFact, data.match_id


def prefetch(session: Session, envelopes: Sequence[Envelope[Any]]) -> None:
    """Read a batch's facts with one query per kind, instead of one query per event and fact.

    Found facts join the transaction's index (see `_fact`); the keys not found are remembered as new,
    so `count` makes them without asking the database again.
    """
    wanted: dict[type[SQLModel], set[str]] = {}
    for envelope in envelopes:
        for model, key in _fact_keys(envelope.data):
            wanted.setdefault(model, set()).add(key)
    made, absent = _MADE.get(session), _ABSENT.get(session)
    with session.no_autoflush:
        for model, keys in wanted.items():
            key_column = sa_inspect(model).primary_key[0]
            unknown = sorted(k for k in keys if (model, k) not in made)
            for start in range(0, len(unknown), PREFETCH_CHUNK):
                chunk = unknown[start : start + PREFETCH_CHUNK]
                found = {getattr(row, key_column.key): row for row in rows_with(session, model, key_column, chunk)}
                made.update(((model, k), row) for k, row in found.items())
                absent.update((model, k) for k in chunk if k not in found)


# --- the catalog -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """An indicator of the catalog (DOMAIN.md §6.2–6.3) or an operational measure."""

    id: str
    name_ja: str
    name_en: str
    definition: str
    source: str = "events"
    unit: Literal["count", "hours"] = "count"


@dataclass(frozen=True)
class Rules:
    """A municipality's counting choices [LOCAL]: who counts as networked, and agencies' sectors."""

    networked_min_attended: int = 2
    networked_last_k: int = 3
    sectors: Mapping[str, str] | None = None  # agency id → welfare | non_welfare


@dataclass(frozen=True)
class Window:
    """The period a report covers: a fiscal year, or one month of it, in Japan time."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def window(year: int, month: int | None) -> Window:
    """The fiscal year (or the month of it) as UTC bounds."""
    if month is None:
        start, end = (year, 4), (year + 1, 4)
    else:
        calendar_year = year if month >= 4 else year + 1
        start = (calendar_year, month)
        end = (calendar_year + (month == 12), month % 12 + 1)
    return Window(
        datetime.combine(datetime(start[0], start[1], 1), time(), tzinfo=JST).astimezone(UTC),
        datetime.combine(datetime(end[0], end[1], 1), time(), tzinfo=JST).astimezone(UTC),
    )


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


@dataclass
class Facts:
    """The facts of one municipality for a report window."""

    cases: list[CaseFact]  # one per household: a case linked to an earlier one is not a case of its own
    household: dict[str, str]  # a linked case → the case its household was first received as
    contacts: list[ContactFact]
    decisions: list[DecisionFact]
    referrals: list[ReferralFact]
    all_referrals: list[ReferralFact]
    meetings: list[MeetingFact]
    promotion_history: list[MeetingFact]


def _facts(session: Session, code: str, span: Window, tier: int | None, year_end: datetime) -> Facts:
    def of(model: Any, moment: Callable[[Any], datetime | None]) -> list[Any]:
        rows: list[Any] = list(session.exec(select(model).where(model.municipality_code == code)).all())
        return [row for row in rows if moment(row) in span]

    every_case = list(session.exec(select(CaseFact).where(CaseFact.municipality_code == code)))
    tiers = {c.case_id: c.tier for c in every_case}
    links = session.exec(
        select(HouseholdLinkFact).where(HouseholdLinkFact.municipality_code == code, col(HouseholdLinkFact.linked))
    )
    household = households(every_case, links)

    def in_tier(case_id: str | None, own: int | None = None) -> bool:
        return tier is None or (own if own is not None else tiers.get(case_id or "")) == tier

    cases = [
        c
        for c in every_case
        if c.received_at in span and in_tier(c.case_id, c.tier) and household.get(c.case_id, c.case_id) == c.case_id
    ]
    contacts = [c for c in of(ContactFact, lambda r: r.received_at) if in_tier(c.case_id)]
    decisions = [d for d in of(DecisionFact, lambda r: r.decided_at) if in_tier(d.case_id, d.tier)]
    referrals = [r for r in of(ReferralFact, lambda r: r.requested_at) if in_tier(r.case_id, r.tier)]
    all_referrals = list(session.exec(select(ReferralFact).where(ReferralFact.municipality_code == code)))
    meetings_all = list(session.exec(select(MeetingFact).where(MeetingFact.municipality_code == code)))
    # A meeting counts once, in the period it takes place (after its latest reschedule), unless cancelled.
    meetings = [
        m
        for m in meetings_all
        if m.cancelled_at is None
        and (m.held_at or m.starts_at or m.scheduled_at) in span
        and in_tier(m.case_id, m.tier)
    ]
    promotion_history = sorted(
        (m for m in meetings_all if m.kind == "promotion_meeting" and m.held_at is not None and m.held_at < year_end),
        key=lambda m: m.held_at or year_end,
    )
    return Facts(cases, household, contacts, decisions, referrals, all_referrals, meetings, promotion_history)


def households(cases: Iterable[CaseFact], links: Iterable[HouseholdLinkFact]) -> dict[str, str]:
    """Each linked case's household, as the case of it received first: that case alone counts in 実件数.

    Links are taken as undirected, so cases linked in a chain (or both ways) make one household.
    """
    parent: dict[str, str] = {}

    def root(case_id: str) -> str:
        while parent.get(case_id, case_id) != case_id:
            case_id = parent[case_id]
        return case_id

    for link in links:
        a, b = root(link.case_id), root(link.linked_case_id)
        if a != b:
            parent[a] = b
    received = {c.case_id: c.received_at for c in cases}
    members: dict[str, list[str]] = {}
    for case_id in parent.keys() | set(parent.values()):
        members.setdefault(root(case_id), []).append(case_id)
    household = {}
    for group in members.values():
        first = min(group, key=lambda c: (received.get(c) or NEVER, c))
        household.update(dict.fromkeys(group, first))
    return household


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def compute(
    facts: Facts, rules: Rules
) -> list[tuple[Indicator, float | None, dict[str, float], dict[str, float] | None]]:
    """Every event-based indicator: (indicator, value, breakdown, shares)."""
    out: list[tuple[Indicator, float | None, dict[str, float], dict[str, float] | None]] = []

    def add(
        indicator: Indicator,
        breakdown: Mapping[str, float],
        value: float | Literal["sum"] | None = "sum",
        shares: dict[str, float] | None = None,
    ) -> None:
        out.append(
            (
                indicator,
                float(sum(breakdown.values())) if value == "sum" else value,
                dict(sorted(breakdown.items())),
                shares,
            )
        )

    sectors = rules.sectors or {}

    def household(case_id: str) -> str:
        return facts.household.get(case_id, case_id)

    by_route = Counter(c.pathway or "unknown" for c in facts.cases)
    total = sum(by_route.values())
    outreach_cases = {c.case_id for c in facts.cases if c.found_by == "outreach"} | {
        household(c.case_id) for c in facts.contacts if c.found_by == "outreach"
    }
    difficult = {household(d.case_id) for d in facts.decisions if d.tier >= 2}
    held = [m for m in facts.meetings if m.held_at is not None]
    attended = [(m, a) for m in held for a in m.attendance if a.get("attended")]
    multi_agency = {
        household(m.case_id)
        for m in held
        if m.kind == "case_meeting"
        and m.case_id
        and len({a["participant"] for a in m.attendance if a.get("attended") and a.get("kind") == "agency"}) >= 2
    }
    networked = _networked(facts.promotion_history, rules)
    waits = [
        (c.first_accepted_at - c.received_at).total_seconds() / 3600
        for c in facts.cases
        if c.first_accepted_at is not None and c.received_at is not None
    ]

    add(
        Indicator(
            "M1",
            "ネットワーク化された福祉分野における主体の数",
            "Networked welfare actors",
            f"直近{rules.networked_last_k}回の推進会議のうち{rules.networked_min_attended}回以上出席",
        ),
        {k: 1 for k, s in networked.items() if s == "welfare"},
    )
    add(
        Indicator(
            "M2",
            "ネットワーク化された福祉分野以外の主体の数",
            "Networked non-welfare actors",
            f"直近{rules.networked_last_k}回の推進会議のうち{rules.networked_min_attended}回以上出席",
        ),
        {k: 1 for k, s in networked.items() if s != "welfare"},
    )
    add(
        Indicator(
            "M5",
            "福祉分野以外の部門の相談支援包括化に係る会議等への出席回数",
            "Attendances of municipal divisions outside welfare",
            "開催された会議への福祉分野以外の庁内部門の出席",
        ),
        Counter(
            m.kind for m, a in attended if a.get("kind") == "municipal_division" and a.get("sector") == "non_welfare"
        ),
    )
    add(
        Indicator(
            "M8",
            "総合相談窓口での相談受付数（実件数）",
            "Consultations received: distinct cases",
            "新規ケース（世帯）ごとに1件",
        ),
        by_route,
    )
    add(
        Indicator(
            "M8-延べ",
            "総合相談窓口での相談受付数（延べ件数）",
            "Consultations received: all contacts",
            "初回と以後の相談をすべて数える（実件数と合算しない）",
        ),
        Counter(c.pathway for c in facts.contacts),
    )
    add(
        Indicator(
            "M10", "調査等の実施により把握した困難事例等の数", "Cases found by surveys", "把握の経緯が調査のケース"
        ),
        Counter(c.pathway or "unknown" for c in facts.cases if c.found_by == "survey"),
    )
    add(
        Indicator(
            "M11",
            "アウトリーチによって把握・対応した困難事例等の数",
            "Cases found or handled by outreach",
            "受付または以後の相談がアウトリーチのケース",
        ),
        {"cases": len(outreach_cases)} if outreach_cases else {},
    )
    add(
        Indicator(
            "M12",
            "福祉関係機関以外からの困難事例等の受付件数",
            "Difficult cases from outside welfare agencies",
            "tier 2/3 のケースで、提出機関が福祉分野以外",
        ),
        Counter(
            c.pathway or "unknown"
            for c in facts.cases
            if c.case_id in difficult and sectors.get(c.submitted_by or "") == "non_welfare"
        ),
    )
    add(
        Indicator(
            "M13",
            "多機関が連携した対応を実施した事例等の数",
            "Cases with a case meeting of ≥2 agencies",
            "2機関以上が出席したケース会議が開かれたケース",
        ),
        {"cases": len(multi_agency)} if multi_agency else {},
    )
    shares = {route: round(100 * n / total, 1) for route, n in sorted(by_route.items())} if total else {}
    add(
        Indicator(
            "R10",
            "相談受付経路別の事例数・割合",
            "Cases by intake route",
            "新規ケースの受付経路（当事者・家族地域・専門機関・行政・知人）",
        ),
        by_route,
        shares=shares,
    )
    add(
        Indicator(
            "OPS-DECISIONS", "振り分け決定件数（層別）", "Routing decisions by tier", "決定（エスカレーション含む）"
        ),
        Counter(f"tier{d.tier}" for d in facts.decisions),
    )
    add(
        Indicator("OPS-PATTERNS", "該当した類型", "Patterns fired", "決定で該当した類型の延べ数"),
        Counter(p for d in facts.decisions for p in d.patterns),
        value=float(len(facts.decisions)),
    )
    add(
        Indicator("OPS-REFERRALS", "つなぎ（紹介）依頼件数", "Referrals requested", "依頼されたつなぎ"),
        Counter(f"tier{r.tier}" for r in facts.referrals),
    )
    add(
        Indicator(
            "OPS-TIME-TO-ACCEPT",
            "初回受諾までの時間（時間）",
            "Hours from consultation to first acceptance",
            "p50 を値とする",
            unit="hours",
        ),
        {"p50": round(_percentile(waits, 0.5), 2), "p90": round(_percentile(waits, 0.9), 2)} if waits else {},
        value=round(_percentile(waits, 0.5), 2) if waits else None,
    )
    reroutes = [r for r in facts.referrals if r.rule_id in {"reroute", "reroute_to_lead"}]
    add(
        Indicator("OPS-REROUTES", "再振り分け件数", "Re-routes", "辞退後の再振り分け; per_case はケースあたり"),
        {"reroutes": len(reroutes)},
        shares={"per_case": round(len(reroutes) / len(facts.cases), 3)} if facts.cases else None,
    )
    add(
        Indicator(
            "OPS-ESCALATIONS",
            "エスカレーション件数",
            "Escalations",
            "期限超過による推進員へのエスカレーションと、要請によるエスカレーション",
        ),
        Counter(
            [
                *("deadline" for r in facts.referrals if r.rule_id == "escalation"),
                *(d.kind for d in facts.decisions if d.kind in {"backup", "prefecture_support"}),
            ]
        ),
    )
    add(
        Indicator(
            "OPS-DEADLINE-BREACHES",
            "受諾期限の超過件数",
            "Referrals not accepted in time",
            "督促・エスカレーションの段階別",
        ),
        Counter(stage for r in facts.referrals for stage in r.overdue_stages),
    )
    add(
        Indicator(
            "OPS-OPEN-CASELOAD",
            "対応中の依頼（層・機関別）",
            "Open referrals by tier and agency (now)",
            "現在進行中の依頼",
        ),
        Counter(f"tier{r.tier}:{r.agency_id}" for r in facts.all_referrals if r.status in LIVE and r.agency_id),
    )
    add(
        Indicator("OPS-RESOURCE-GAPS", "社会資源の不足（種別）", "Resource gaps by type", "決定で報告された不足"),
        Counter(g for d in facts.decisions for g in d.resource_gaps),
    )
    add(
        Indicator(
            "OPS-CASE-MEETINGS",
            "ケース会議 設定件数",
            "Case meetings scheduled",
            "設定されたケース会議（開催日時の期間に計上、変更後の日時で1回、取消を除く）",
        ),
        Counter(f"tier{m.tier}" for m in facts.meetings if m.kind == "case_meeting" and m.scheduled_at is not None),
    )
    add(
        Indicator("OPS-MEETINGS-HELD", "会議の開催回数", "Meetings held", "ケース会議・推進会議"),
        Counter(m.kind for m in held),
    )
    return out


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


def report(
    session: Session,
    *,
    municipality_code: str,
    year: int,
    month: int | None = None,
    tier: int | None = None,
    rules: Rules | None = None,
    municipality_name: str | None = None,
) -> IndicatorReport:
    """Every indicator of a municipality for a fiscal year (optionally a month, a tier), with targets."""
    span = window(year, month)
    facts = _facts(session, municipality_code, span, tier, window(year, None).end)
    targets = {
        t.indicator: t.value
        for t in session.exec(
            select(Target).where(Target.municipality_code == municipality_code, Target.fiscal_year == year)
        )
    }
    manual = {
        m.indicator: m.value
        for m in session.exec(
            select(ManualValue).where(
                ManualValue.municipality_code == municipality_code, ManualValue.fiscal_year == year
            )
        )
    }
    values = [
        IndicatorValue(
            id=i.id,
            name_ja=i.name_ja,
            name_en=i.name_en,
            definition=i.definition,
            source=i.source,
            unit=i.unit,
            value=value,
            by_dimension=breakdown,
            shares=shares,
        )
        for i, value, breakdown, shares in compute(facts, rules or Rules())
    ]
    values += [
        IndicatorValue(
            id=i.id,
            name_ja=i.name_ja,
            name_en=i.name_en,
            definition=i.definition,
            source=i.source,
            unit="as_entered",
            value=manual.get(i.id),
            by_dimension={},
        )
        for i in MANUAL
    ]
    for value in values:
        target = targets.get(value.id)
        if target is not None:
            value.target = target
            value.attainment = round(100 * value.value / target, 1) if value.value is not None and target else None
    return IndicatorReport(
        municipality_code=municipality_code,
        municipality_name=municipality_name,
        fiscal_year=year,
        fiscal_year_label=fiscal_year_label(year),
        month=month,
        tier=tier,
        indicators=values,
    )


def set_value(
    session: Session,
    model: type[ManualValue] | type[Target],
    *,
    code: str,
    year: int,
    indicator: str,
    value: float,
    by: str,
    note: str = "",
) -> None:
    """Record a manual value or a target (replacing the previous one)."""
    if model is ManualValue:
        session.merge(
            ManualValue(
                municipality_code=code, fiscal_year=year, indicator=indicator, value=value, note=note, entered_by=by
            )
        )
    else:
        session.merge(Target(municipality_code=code, fiscal_year=year, indicator=indicator, value=value, set_by=by))


def wipe(session: Session, tables: Iterable[type]) -> None:
    """Delete every row of the fact tables (before a rebuild)."""
    for table in tables:
        session.exec(table.__table__.delete())  # type: ignore[attr-defined]
