"""The agenda of a 推進会議, by item (ア)–(オ) of 実施要領 3(4)ウ: agencies new to the network, counts of
the cases that need the network's attention, resource gaps, and the metrics service's indicators."""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference
from services.conference.errors import AgendaNotRecorded
from services.conference.models import CaseDecision, CaseState, Meeting, NetworkMember, ResourceGapReport
from services.conference.promotion_meetings import last_held_promotion_meeting
from shared.calendar import JST
from shared.directory import Directory


@dataclass(frozen=True)
class IndicatorSnapshot:
    """The metrics service's indicator report as fetched for an agenda.

    It is not an event: its agenda line names no event ids but the report it is (municipality, fiscal
    year, month, tier), where it was fetched from and when, so the figures shown can be traced.
    """

    report: Mapping[str, Any]
    url: str
    fetched_at: datetime


SNAPSHOT_IDENTITY = ("municipality_code", "fiscal_year", "fiscal_year_label", "month", "tier")


def _snapshot_line(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    report = snapshot.report
    fetched = snapshot.fetched_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return {
        "text": f"成果指標のスナップショット（{report.get('fiscal_year_label')}、{fetched} 取得）",
        "source_events": [],
        "source": {
            "kind": "metrics_snapshot",
            "report": {key: report.get(key) for key in SNAPSHOT_IDENTITY},
            "url": snapshot.url,
            "fetched_at": snapshot.fetched_at.isoformat(),
        },
        "detail": dict(report),
    }


def build_agenda(
    session: Session,
    config: MunicipalityConference,
    meeting: Meeting,
    *,
    snapshot: IndicatorSnapshot | None,
    snapshot_error: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The agenda by item of 実施要領 3(4)ウ: agencies new to the network, then counts, then the indicators.

    The 推進会議 is the whole network, so (ウ) and (エ) speak in counts and name no case, nor any event
    that would name one (a routing decision is keyed by its case): case-level items belong to each
    case's own meeting, among the agencies engaged on it.
    """
    moment = now or datetime.now(UTC)
    code = meeting.municipality_code
    previous = last_held_promotion_meeting(session, code)
    since = (
        previous.starts_at
        if previous is not None and previous.starts_at is not None
        else datetime(2000, 1, 1, tzinfo=UTC)
    )
    # Where the counts come from, in place of event ids: this service's records of the municipality.
    counted = {
        "kind": "conference_records",
        "municipality_code": code,
        "since": since.isoformat(),
        "as_of": moment.isoformat(),
    }
    directory = config.directory
    newcomers = session.exec(
        select(NetworkMember)
        .where(NetworkMember.municipality_code == code, col(NetworkMember.first_seen_at) > since)
        .order_by(col(NetworkMember.first_seen_at), col(NetworkMember.agency_id))
    ).all()
    network = [
        _line(
            f"{_name(directory, m.agency_id)}（{m.agency_type}）が連携に参加: 役割の共有",
            {"agency_id": m.agency_id, "agency_type": m.agency_type},
            {**counted, "kind": "network_members"},
        )
        for m in newcomers
    ]
    cases = session.exec(select(CaseState).where(CaseState.municipality_code == code)).all()
    case_ids = {c.case_id for c in cases}
    latest = _latest_decisions(session)
    review_after = timedelta(days=config.settings.promotion_meeting.review_after_days)

    def difficult_since(case: CaseState) -> datetime:
        return case.difficult_since or case.routed_at

    def review_overdue(case: CaseState) -> bool:
        # The review date a meeting set is the one to keep; without one, review_after_days from when the
        # case was last looked at.
        decision = latest.get(case.case_id)
        if decision is not None and decision.recorded_at >= difficult_since(case):
            return decision.next_review < moment.astimezone(JST).date()
        return difficult_since(case) < moment - review_after

    difficult = [c for c in cases if c.tier >= 2]
    new_cases = [c for c in difficult if difficult_since(c) > since]
    overdue = [c for c in difficult if review_overdue(c)]
    awaiting = [d for d in latest.values() if d.plan_status == "drafted" and d.case_id in case_ids]
    needs = [
        _line(
            f"新たに tier 2/3 となったケース: {len(new_cases)}件{_tier_text(new_cases)}",
            {
                "item": "new_difficult_cases",
                "cases": len(new_cases),
                "by_tier": _by_tier(new_cases),
                "by_pattern": dict(sorted(Counter(p for c in new_cases for p in c.patterns).items())),
            },
            counted,
        ),
        _line(
            f"見直し期日（次回見直し日、なければ{review_after.days}日）を過ぎたケース: {len(overdue)}件"
            f"{_tier_text(overdue)}",
            {
                "item": "overdue_reviews",
                "cases": len(overdue),
                "by_tier": _by_tier(overdue),
                "review_after_days": review_after.days,
            },
            counted,
        ),
        _line(
            f"承認待ちの支援プラン: {len(awaiting)}件",
            {"item": "plans_awaiting_approval", "plans": len(awaiting)},
            counted,
        ),
    ]
    gaps = session.exec(
        select(ResourceGapReport).where(
            ResourceGapReport.municipality_code == code, col(ResourceGapReport.reported_at) > since
        )
    ).all()
    gap_cases: dict[str, set[str]] = {}
    for gap in gaps:
        gap_cases.setdefault(gap.partner_type, set()).add(gap.case_id)
    resources = [
        _line(
            f"社会資源の不足: {partner_type}（{len(reporting)}件のケース）",
            {"partner_type": partner_type, "cases": len(reporting)},
            counted,
        )
        for partner_type, reporting in sorted(gap_cases.items())
    ]
    results = (
        [_snapshot_line(snapshot)]
        if snapshot is not None
        else [{"text": f"成果指標を取得できませんでした: {snapshot_error}", "source_events": [], "detail": {}}]
    )
    return {
        "meeting_id": meeting.id,
        "generated_at": moment.isoformat(),
        "since": since.isoformat(),
        "reuses": config.settings.promotion_meeting.reuses,
        "items": {
            "ア_イ": {
                "title": "各相談支援機関の業務内容の理解・具体的な連携方法（新たな参加機関と役割）",
                "lines": network,
            },
            "ウ": {
                "title": "地域住民が抱える福祉ニーズの把握（新規・未見直しケース、承認待ちプランの件数）",
                "lines": needs,
            },
            "エ": {"title": "地域に不足する社会資源（ルーターが報告した不足の件数）", "lines": resources},
            "オ": {"title": "本事業による支援実績の検証（成果指標）", "lines": results},
        },
    }


def frozen_agenda(meeting: Meeting) -> dict[str, Any] | None:
    """A held 推進会議's agenda as frozen when it was held; None for one not yet held (build it instead)."""
    if meeting.status != "held":
        return None
    if meeting.agenda is None:
        raise AgendaNotRecorded()
    return meeting.agenda


def _line(text: str, detail: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    # No event ids: those of these records are a case's routing decisions and meeting records.
    return {"text": text, "source_events": [], "source": source, "detail": detail}


def _by_tier(cases: Iterable[CaseState]) -> dict[str, int]:
    return dict(sorted(Counter(f"tier{c.tier}" for c in cases).items()))


def _tier_text(cases: list[CaseState]) -> str:
    tiers = _by_tier(cases)
    return "（" + "、".join(f"tier {k.removeprefix('tier')}: {n}件" for k, n in tiers.items()) + "）" if tiers else ""


def _name(directory: Directory, agency_id: str) -> str:
    agency = directory.find_agency(agency_id)
    return agency.name if agency is not None else agency_id


def _latest_decisions(session: Session) -> dict[str, CaseDecision]:
    """Each case's latest decision: when it was last reviewed, and whether its plan awaits approval."""
    decisions = session.exec(select(CaseDecision).order_by(col(CaseDecision.recorded_at), col(CaseDecision.id)))
    return {decision.case_id: decision for decision in decisions.all()}
