"""Metrics' logic: count each event once into per-municipality, per-fiscal-year indicators."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from services.metrics.models import CountedCase, IndicatorCount, IndicatorReport, IndicatorValue
from shared.events import (
    ConferenceHeld,
    ConferenceScheduled,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    EventData,
    ReferralRequested,
    RoutingDecided,
)

JST = ZoneInfo("Asia/Tokyo")
REIWA_FIRST_YEAR = 2019


@dataclass(frozen=True)
class Indicator:
    """An indicator the service counts from events."""

    id: str
    name_ja: str
    name_en: str


CONSULTATIONS = Indicator("M8", "総合相談窓口での相談受付数（実件数）", "Consultations received: distinct cases")
CONTACTS = Indicator("M8-延べ", "総合相談窓口での相談受付数（延べ件数）", "Consultations received: all contacts")
DECISIONS = Indicator("OPS-DECISIONS", "振り分け決定件数（層別）", "Routing decisions by tier")
REFERRALS = Indicator("OPS-REFERRALS", "つなぎ（紹介）依頼件数", "Referrals requested")
CASE_MEETINGS = Indicator("OPS-CASE-MEETINGS", "ケース会議 設定件数", "Case meetings scheduled")

DIVISION_ATTENDANCES = Indicator(
    "M5",
    "福祉分野以外の部門の相談支援包括化に係る会議等への出席回数",
    "Attendances of municipal divisions outside welfare",
)
MULTI_AGENCY_CASES = Indicator(
    "M13", "多機関が連携した対応を実施した事例等の数", "Cases with a case meeting attended by at least two agencies"
)
MEETINGS_HELD = Indicator("OPS-MEETINGS-HELD", "会議の開催回数", "Meetings held")

INDICATORS = (
    CONSULTATIONS,
    CONTACTS,
    DECISIONS,
    REFERRALS,
    CASE_MEETINGS,
    MEETINGS_HELD,
    DIVISION_ATTENDANCES,
    MULTI_AGENCY_CASES,
)
# M13's proxy (seed L1964): a case meeting attended by this many agencies or more [LOCAL].
M13_MIN_AGENCIES = 2


def fiscal_year(moment: datetime) -> int:
    """The Japanese fiscal year (April–March) of a moment, in Japan time."""
    local = moment.astimezone(JST)
    return local.year if local.month >= 4 else local.year - 1


def fiscal_year_label(year: int) -> str:
    """E.g. 2025 → '令和7年度 (FY2025)'."""
    reiwa = year - REIWA_FIRST_YEAR + 1
    era = "令和元年度" if reiwa == 1 else f"令和{reiwa}年度"
    return f"{era} (FY{year})"


def _counts_of(data: EventData) -> list[tuple[Indicator, str]]:
    match data:
        case ConsultationReceived():
            # A new case is one 実件数 and its opening contact one 延べ; the two are never summed.
            return [(CONSULTATIONS, data.consultation.pathway.value), (CONTACTS, data.consultation.pathway.value)]
        case ContactRecorded():
            return [(CONTACTS, data.pathway.value)]
        case RoutingDecided():
            return [(DECISIONS, f"tier{data.tier}")]
        case ReferralRequested():
            return [(REFERRALS, f"tier{data.tier}")]
        case ConferenceScheduled() if data.kind == "case_meeting":
            return [(CASE_MEETINGS, f"tier{data.tier}")]
        case ConferenceHeld():
            present = [a for a in data.attendance if a.attended]
            divisions = [a for a in present if a.kind == "municipal_division" and a.sector == "non_welfare"]
            return [(MEETINGS_HELD, data.kind), *[(DIVISION_ATTENDANCES, data.kind)] * len(divisions)]
    return []


def _distinct_cases(data: EventData) -> list[tuple[Indicator, str]]:
    if isinstance(data, ConferenceHeld) and data.kind == "case_meeting" and data.case_id:
        agencies = {a.participant for a in data.attendance if a.attended and a.kind == "agency"}
        if len(agencies) >= M13_MIN_AGENCIES:
            return [(MULTI_AGENCY_CASES, data.case_id)]
    return []


def count(session: Session, envelope: Envelope[EventData]) -> None:
    """Add one event to its indicators, in the fiscal year and month of the event's time."""
    year, month = fiscal_year(envelope.time), envelope.time.astimezone(JST).month
    counts = _counts_of(envelope.data)
    for indicator, case_id in _distinct_cases(envelope.data):
        if session.get(CountedCase, (indicator.id, case_id)) is None:
            session.add(CountedCase(indicator=indicator.id, case_id=case_id))
            counts.append((indicator, ""))
    for indicator, dimension in counts:
        key = (envelope.municipalitycode, year, month, indicator.id, dimension)
        row = session.get(IndicatorCount, key)
        if row is None:
            row = IndicatorCount(
                municipality_code=key[0], fiscal_year=year, month=month, indicator=indicator.id, dimension=dimension
            )
            session.add(row)
        row.value += 1


def report(session: Session, *, municipality_code: str, year: int, month: int | None = None) -> IndicatorReport:
    """Every indicator of a municipality and fiscal year (optionally one month), zeros included."""
    query = select(IndicatorCount).where(
        IndicatorCount.municipality_code == municipality_code, IndicatorCount.fiscal_year == year
    )
    if month is not None:
        query = query.where(IndicatorCount.month == month)
    by_indicator: dict[str, dict[str, int]] = {i.id: {} for i in INDICATORS}
    for row in session.exec(query):
        dimensions = by_indicator.setdefault(row.indicator, {})
        dimensions[row.dimension] = dimensions.get(row.dimension, 0) + row.value
    return IndicatorReport(
        municipality_code=municipality_code,
        fiscal_year=year,
        fiscal_year_label=fiscal_year_label(year),
        indicators=[
            IndicatorValue(
                id=i.id,
                name_ja=i.name_ja,
                name_en=i.name_en,
                value=sum(by_indicator[i.id].values()),
                by_dimension=dict(sorted(by_indicator[i.id].items())),
            )
            for i in INDICATORS
        ],
    )
