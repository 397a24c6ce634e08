"""Metrics' logic: count each event once into per-municipality, per-fiscal-year indicators."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from services.metrics.models import IndicatorCount, IndicatorReport, IndicatorValue
from shared.events import (
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

INDICATORS = (CONSULTATIONS, CONTACTS, DECISIONS, REFERRALS, CASE_MEETINGS)


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
        case ConferenceScheduled():
            return [(CASE_MEETINGS, f"tier{data.tier}")]
    return []


def count(session: Session, envelope: Envelope[EventData]) -> None:
    """Add one event to its indicators, in the fiscal year and month of the event's time."""
    year, month = fiscal_year(envelope.time), envelope.time.astimezone(JST).month
    for indicator, dimension in _counts_of(envelope.data):
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
