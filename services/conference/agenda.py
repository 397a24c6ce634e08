"""The agenda of a 推進会議, by item (ア)–(オ) of 実施要領 3(4)ウ: each agency's part in the network, how the
agencies worked together, the residents' needs seen across cases, the resources missing, and the metrics
service's indicators against their targets.

The 推進会議 is the whole network, so every line speaks in counts and names no case, nor any event that
would name one (a routing decision is keyed by its case): case-level items belong to each case's own
meeting, among the agencies engaged on it. Agencies are named: they are the network, not households.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

from sqlmodel import Session, col, select

from services.conference.config import MunicipalityConference
from services.conference.errors import AgendaNotRecorded
from services.conference.kinds import KINDS
from services.conference.models import (
    Attendance,
    CaseDecision,
    CaseHandoff,
    CaseIntake,
    CaseState,
    Meeting,
    NetworkMember,
    ResourceGapReport,
)
from services.conference.plans import open_overdue_monitorings
from services.conference.promotion_meetings import last_held_promotion_meeting
from shared.calendar import JST
from shared.directory import UnknownArea
from shared.events import MeetingKind
from shared.vocabulary import ContactStatus

# The wording of 実施要領 3(4)ウ (seed L3447–L3451), as the municipalities' agendas carry it.
TITLES = {
    "ア": "各相談支援機関の業務内容の理解",
    "イ": "相談支援の包括化を図るための各相談支援機関の具体的な連携方法",
    "ウ": "地域住民が抱える福祉ニーズの把握",
    "エ": "地域に不足する社会資源創出の手法",
    "オ": "本事業による支援実績の検証",
}
# The case-level meetings whose holding (イ) reports; the 推進会議 itself is the one the agenda is for.
CASE_LEVEL_KINDS: tuple[MeetingKind, ...] = ("case_meeting", "support_meeting", "plan_meeting")
HANDOFF_NAMES = {
    "reroute": "つなぎ直し（受入不可）",
    "backup": "バックアップ要請",
    "prefecture_support": "都道府県域の支援へ",
    "return_to_community": "地域への戻し（見守り）",
    "escalation": "エスカレーション",
}
# A case whose consultation conference has not seen, or whose case was erased: its area is not known here.
UNKNOWN_AREA = "unknown"
SNAPSHOT_IDENTITY = ("municipality_code", "fiscal_year", "fiscal_year_label", "month", "tier")


@dataclass(frozen=True)
class IndicatorSnapshot:
    """The metrics service's indicator report as fetched for an agenda.

    It is not an event: its agenda line names no event ids but the report it is (municipality, fiscal
    year, month, tier), where it was fetched from and when, so the figures shown can be traced.
    """

    report: Mapping[str, Any]
    url: str
    fetched_at: datetime


@dataclass(frozen=True)
class Window:
    """What one agenda counts over: the municipality's records since its last held 推進会議, as of now.

    `current` are the cases still followed: a 終結 without 見守り (or a 転居) ends a case's part in the
    counts of now, not in those of the needs the period brought; a new contact that reopens it brings
    it back.
    """

    session: Session
    config: MunicipalityConference
    meeting: Meeting
    since: datetime
    moment: datetime
    cases: list[CaseState]
    current: list[CaseState]
    latest: dict[str, CaseDecision]
    areas: dict[str, str]  # case → area, from its consultation

    @property
    def code(self) -> str:
        """The municipality's code."""
        return self.meeting.municipality_code

    def source(self, *records: str, windowed: bool = True) -> dict[str, Any]:
        """Where a line's counts come from, in place of event ids: which of this service's records, of
        which municipality, over which period."""
        period = {"since": self.since.isoformat()} if windowed else {}
        return {
            "kind": "conference_records",
            "records": list(records),
            "municipality_code": self.code,
            **period,
            "as_of": self.moment.isoformat(),
        }

    def agency_name(self, agency_id: str) -> str:
        """The directory's name of the agency, or its id when the directory no longer lists it."""
        agency = self.config.directory.find_agency(agency_id)
        return agency.name if agency is not None else agency_id

    def area_name(self, area_id: str) -> str:
        """The directory's name of the area, or its id."""
        if area_id == UNKNOWN_AREA:
            return "地域不明"
        try:
            return self.config.directory.ancestors(area_id)[0].name
        except UnknownArea:
            return area_id

    def area_of(self, case_id: str) -> str:
        """The area of the case's consultation (UNKNOWN_AREA when conference has not seen it)."""
        return self.areas.get(case_id, UNKNOWN_AREA)

    def held_meetings(self) -> list[Meeting]:
        """The municipality's meetings held since the last 推進会議, this one aside."""
        query = select(Meeting).where(
            Meeting.municipality_code == self.code, Meeting.status == "held", Meeting.id != self.meeting.id
        )
        return [m for m in self.session.exec(query).all() if (m.starts_at or m.held_at or self.since) > self.since]


def build_agenda(
    session: Session,
    config: MunicipalityConference,
    meeting: Meeting,
    *,
    snapshot: IndicatorSnapshot | None,
    snapshot_error: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The agenda by item (ア)–(オ) of 実施要領 3(4)ウ, counted since the municipality's last held 推進会議."""
    window = _window(session, config, meeting, now or datetime.now(UTC))
    items = {
        "ア": _agencies_part(window),
        "イ": _collaboration(window),
        "ウ": _needs(window),
        "エ": _resources(window),
        "オ": _results(window, snapshot, snapshot_error),
    }
    return {
        "meeting_id": meeting.id,
        "generated_at": window.moment.isoformat(),
        "since": window.since.isoformat(),
        "reuses": config.settings.promotion_meeting.reuses,
        "items": {key: {"title": TITLES[key], "lines": lines} for key, lines in items.items()},
    }


def frozen_agenda(meeting: Meeting) -> dict[str, Any] | None:
    """A held 推進会議's agenda as frozen when it was held; None for one not yet held (build it instead)."""
    if meeting.status != "held":
        return None
    if meeting.agenda is None:
        raise AgendaNotRecorded()
    return meeting.agenda


def _window(session: Session, config: MunicipalityConference, meeting: Meeting, moment: datetime) -> Window:
    code = meeting.municipality_code
    previous = last_held_promotion_meeting(session, code)
    since = (
        previous.starts_at
        if previous is not None and previous.starts_at is not None
        else datetime(2000, 1, 1, tzinfo=UTC)
    )
    latest = _latest_decisions(session, code)
    cases = list(session.exec(select(CaseState).where(CaseState.municipality_code == code)).all())
    intakes = session.exec(select(CaseIntake).where(CaseIntake.municipality_code == code)).all()
    return Window(
        session=session,
        config=config,
        meeting=meeting,
        since=since,
        moment=moment,
        cases=cases,
        current=[case for case in cases if case.life_state != "closed"],
        latest=latest,
        # An erased case's area is no longer known (消去 emptied it): counted as 地域不明.
        areas={intake.case_id: intake.area or UNKNOWN_AREA for intake in intakes},
    )


# (ア) 各相談支援機関の業務内容の理解


def _agencies_part(window: Window) -> list[dict[str, Any]]:
    """The network as a whole, then each agency of it: the cases it is on now, whether it is new, its
    attendance."""
    members = window.session.exec(
        select(NetworkMember)
        .where(NetworkMember.municipality_code == window.code)
        .order_by(col(NetworkMember.agency_id))
    ).all()
    engaged = Counter(agency for case in window.current for agency in set(case.engaged))
    leading = Counter(case.lead for case in window.current if case.lead)
    attended, invited = _attendance(window)
    source = window.source("network_member", "case_state", "meeting", "attendance")
    newcomers = [m.agency_id for m in members if m.first_seen_at > window.since]
    # Those invited to meetings of the period who came to none: the network's part not yet taken up.
    absent = sorted(m.agency_id for m in members if invited[m.agency_id] and not attended[m.agency_id])
    absent_text = "、".join(window.agency_name(a) for a in absent)
    lines = [
        _line(
            f"ネットワーク全体: 参加機関 {len(members)}機関（前回以降の新規参加 {len(newcomers)}機関）、"
            f"期間中の会議に招かれて一度も出席していない機関 {len(absent)}機関"
            + (f"（{absent_text}）" if absent else ""),
            {
                "item": "network",
                "members": len(members),
                "new_members": len(newcomers),
                "not_attending": len(absent),
                "not_attending_agencies": absent,
            },
            source,
        )
    ]
    for member in members:
        agency = member.agency_id
        new = member.first_seen_at > window.since
        lines.append(
            _line(
                f"{window.agency_name(agency)}（{member.agency_type}）: 関わっているケース {engaged[agency]}件"
                f"（うち主担当 {leading[agency]}件）、期間中の会議への出席 {attended[agency]}/{invited[agency]}回"
                + ("、前回以降に新たに参加" if new else ""),
                {
                    "item": "agency",
                    "agency_id": agency,
                    "agency_type": member.agency_type,
                    "engaged_cases": engaged[agency],
                    "lead_cases": leading[agency],
                    "new_member": new,
                    "meetings_attended": attended[agency],
                    "meetings_invited": invited[agency],
                },
                source,
            )
        )
    return lines


def _attendance(window: Window) -> tuple[Counter[str], Counter[str]]:
    """How many meetings of the period each agency attended, and to how many it was invited."""
    held = window.held_meetings()
    rows = window.session.exec(
        select(Attendance).where(col(Attendance.meeting_id).in_([m.id for m in held]), Attendance.kind == "agency")
    ).all()
    by_meeting: defaultdict[str, list[Attendance]] = defaultdict(list)
    for row in rows:
        by_meeting[row.meeting_id].append(row)
    attended: Counter[str] = Counter()
    invited: Counter[str] = Counter()
    for meeting in held:
        recorded = by_meeting[meeting.id]
        # An agency recorded as present without an invitation was there all the same.
        invited.update({*meeting.participants, *(r.participant for r in recorded)})
        attended.update({r.participant for r in recorded if r.attended})
    return attended, invited


# (イ) 相談支援の包括化を図るための各相談支援機関の具体的な連携方法


def _collaboration(window: Window) -> list[dict[str, Any]]:
    """Agencies working on the same cases, the case-level meetings held, and the hand-offs between agencies."""
    return [_joint_engagements(window), _meetings_held(window), _handoffs(window)]


def _joint_engagements(window: Window) -> dict[str, Any]:
    pairs: Counter[tuple[str, str]] = Counter()
    shared = 0
    for case in window.current:
        agencies = sorted(set(case.engaged))
        shared += len(agencies) >= 2
        pairs.update(combinations(agencies, 2))
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    breakdown = "、".join(f"{window.agency_name(a)}・{window.agency_name(b)} {n}件" for (a, b), n in ranked)
    return _line(
        f"複数の機関が共に関わっているケース: {shared}件" + (f"（{breakdown}）" if ranked else ""),
        {
            "item": "joint_engagements",
            "cases": shared,
            "by_pair": [{"agencies": [a, b], "cases": n} for (a, b), n in ranked],
        },
        window.source("case_state", windowed=False),
    )


def _meetings_held(window: Window) -> dict[str, Any]:
    held = Counter(m.kind for m in window.held_meetings())
    by_kind = {kind: held[kind] for kind in CASE_LEVEL_KINDS}
    breakdown = "、".join(f"{KINDS[kind].name} {n}回" for kind, n in by_kind.items())
    return _line(
        f"期間中に開かれた個別ケースの会議: {sum(by_kind.values())}回（{breakdown}）",
        {"item": "meetings_held", "meetings": sum(by_kind.values()), "by_kind": by_kind},
        window.source("meeting"),
    )


def _handoffs(window: Window) -> dict[str, Any]:
    rows = window.session.exec(
        select(CaseHandoff).where(CaseHandoff.municipality_code == window.code, col(CaseHandoff.at) > window.since)
    ).all()
    by_pair = Counter((row.kind, row.from_agency, row.to_agency) for row in rows)
    ranked = sorted(by_pair.items(), key=lambda item: (item[0][0], -item[1], item[0][1:]))
    breakdown = "、".join(
        f"{HANDOFF_NAMES.get(kind, kind)}: {window.agency_name(a)} → {window.agency_name(b)} {n}件"
        for (kind, a, b), n in ranked
    )
    return _line(
        f"期間中の機関間の引き継ぎ: {len(rows)}件" + (f"（{breakdown}）" if ranked else ""),
        {
            "item": "handoffs",
            "handoffs": len(rows),
            "by_kind": dict(sorted(Counter(row.kind for row in rows).items())),
            "by_pair": [{"kind": k, "from_agency": a, "to_agency": b, "handoffs": n} for (k, a, b), n in ranked],
        },
        window.source("case_handoff"),
    )


# (ウ) 地域住民が抱える福祉ニーズの把握


def _needs(window: Window) -> list[dict[str, Any]]:
    """New difficult cases, the issues, gaps between systems and people not yet reached, by area; then the
    reviews overdue, the plans awaiting approval and the monitorings overdue."""
    received = window.session.exec(
        select(CaseIntake).where(
            CaseIntake.municipality_code == window.code, col(CaseIntake.received_at) > window.since
        )
    ).all()
    unreached = window.session.exec(
        select(CaseIntake).where(
            CaseIntake.municipality_code == window.code, CaseIntake.contact == ContactStatus.not_yet_reached
        )
    ).all()
    return [
        _new_difficult_cases(window),
        _issues(window, received),
        _counted_by_area(
            window,
            "services_gap",
            "既存の制度・サービスでは対応できないケース（制度の狭間）",
            [i.area for i in received if not i.services_fit],
            window.source("case_intake"),
        ),
        # A state, not an event of the period: everyone still not reached is on the network's mind.
        _counted_by_area(
            window,
            "not_yet_reached",
            "本人とまだ接触できていないケース（現時点）",
            [i.area for i in unreached],
            window.source("case_intake", windowed=False),
        ),
        _overdue_reviews(window),
        _plans_awaiting_approval(window),
        _overdue_monitorings(window),
    ]


def _new_difficult_cases(window: Window) -> dict[str, Any]:
    new = [c for c in window.cases if c.tier >= 2 and _difficult_since(c) > window.since]
    by_area = _by_area(window.area_of(c.case_id) for c in new)
    return _line(
        f"新たに tier 2/3 となったケース: {len(new)}件{_tier_text(new)}{_area_text(window, by_area)}",
        {
            "item": "new_difficult_cases",
            "cases": len(new),
            "by_tier": _by_tier(new),
            "by_pattern": dict(sorted(Counter(p for c in new for p in c.patterns).items())),
            "by_area": by_area,
        },
        window.source("case_state", "case_intake"),
    )


def _issues(window: Window, received: Iterable[CaseIntake]) -> dict[str, Any]:
    intakes = list(received)
    by_issue = _sorted_counts(tag for i in intakes for tag in i.issues)
    by_area: defaultdict[str, list[CaseIntake]] = defaultdict(list)
    for intake in intakes:
        by_area[intake.area or UNKNOWN_AREA].append(intake)
    issues_text = "、".join(f"{tag} {n}件" for tag, n in by_issue.items())
    return _line(
        f"期間中に受け付けた相談: {len(intakes)}件" + (f"（課題別: {issues_text}）" if by_issue else ""),
        {
            "item": "issues",
            "cases": len(intakes),
            "by_issue": by_issue,
            "by_area": {
                area: {"cases": len(group), "by_issue": _sorted_counts(t for i in group for t in i.issues)}
                for area, group in sorted(by_area.items())
            },
        },
        window.source("case_intake"),
    )


def _counted_by_area(window: Window, item: str, label: str, areas: list[str], source: dict[str, Any]) -> dict[str, Any]:
    by_area = _by_area(areas)
    return _line(
        f"{label}: {len(areas)}件{_area_text(window, by_area)}",
        {"item": item, "cases": len(areas), "by_area": by_area},
        source,
    )


def _overdue_reviews(window: Window) -> dict[str, Any]:
    review_after = timedelta(days=window.config.settings.promotion_meeting.review_after_days)
    today = window.moment.astimezone(JST).date()

    def overdue(case: CaseState) -> bool:
        # The review date a meeting set is the one to keep; without one, review_after_days from when the
        # case became difficult.
        decision = window.latest.get(case.case_id)
        if decision is not None and decision.next_review is not None and decision.recorded_at >= _difficult_since(case):
            return decision.next_review < today
        return _difficult_since(case) < window.moment - review_after

    cases = [c for c in window.current if c.tier >= 2 and overdue(c)]
    return _line(
        f"見直し期日（次回見直し日、なければ{review_after.days}日）を過ぎたケース: {len(cases)}件{_tier_text(cases)}",
        {
            "item": "overdue_reviews",
            "cases": len(cases),
            "by_tier": _by_tier(cases),
            "review_after_days": review_after.days,
        },
        window.source("case_state", "case_decision", windowed=False),
    )


def _plans_awaiting_approval(window: Window) -> dict[str, Any]:
    current = {c.case_id for c in window.current}
    awaiting = [d for d in window.latest.values() if d.plan_status == "drafted" and d.case_id in current]
    return _line(
        f"承認待ちの支援プラン: {len(awaiting)}件",
        {"item": "plans_awaiting_approval", "plans": len(awaiting)},
        window.source("case_decision", windowed=False),
    )


def _overdue_monitorings(window: Window) -> dict[str, Any]:
    # The router's timers found these overdue and no monitoring has been recorded since: a state of now,
    # of the plans in force of the cases still followed.
    current = {c.case_id for c in window.current}
    overdue = [row for row in open_overdue_monitorings(window.session, window.code) if row.case_id in current]
    return _line(
        f"モニタリング期日を過ぎた支援プラン（現時点）: {len(overdue)}件",
        {"item": "overdue_monitorings", "plans": len(overdue)},
        window.source("overdue_monitoring", "support_plan", windowed=False),
    )


# (エ) 地域に不足する社会資源創出の手法


def _resources(window: Window) -> list[dict[str, Any]]:
    """The resource gaps the router reported in the period: cases in all and by area, then by partner type."""
    gaps = window.session.exec(
        select(ResourceGapReport).where(
            ResourceGapReport.municipality_code == window.code, col(ResourceGapReport.reported_at) > window.since
        )
    ).all()
    source = window.source("resource_gap", "case_intake")
    by_type: defaultdict[str, set[str]] = defaultdict(set)
    for gap in gaps:
        by_type[gap.partner_type].add(gap.case_id)
    reporting = {gap.case_id for gap in gaps}
    all_areas = _by_area(window.area_of(case_id) for case_id in reporting)
    lines = [
        _line(
            f"社会資源の不足が報告されたケース: {len(reporting)}件（不足の種類 {len(by_type)}）"
            + _area_text(window, all_areas),
            {"item": "resource_gaps", "cases": len(reporting), "partner_types": len(by_type), "by_area": all_areas},
            source,
        )
    ]
    for partner_type, cases in sorted(by_type.items()):
        by_area = _by_area(window.area_of(case_id) for case_id in cases)
        lines.append(
            _line(
                f"社会資源の不足: {partner_type}（{len(cases)}件のケース）{_area_text(window, by_area)}",
                {"item": "resource_gap", "partner_type": partner_type, "cases": len(cases), "by_area": by_area},
                source,
            )
        )
    return lines


# (オ) 本事業による支援実績の検証


def _results(window: Window, snapshot: IndicatorSnapshot | None, error: str | None) -> list[dict[str, Any]]:
    """The indicator snapshot, then each indicator that has a target: value, target, attainment."""
    if snapshot is None:
        return [
            {
                "text": f"成果指標を取得できませんでした: {error}",
                "source_events": [],
                "source": {
                    "kind": "metrics_snapshot",
                    "municipality_code": window.code,
                    "as_of": window.moment.isoformat(),
                },
                "detail": {},
            }
        ]
    lines = [_snapshot_line(snapshot)]
    for indicator in snapshot.report.get("indicators") or []:
        if indicator.get("target") is None:
            continue
        value, target, attainment = indicator.get("value"), indicator["target"], indicator.get("attainment")
        lines.append(
            _line(
                f"{indicator.get('name_ja', indicator.get('id'))}（{indicator.get('id')}）: 実績 {_number(value)}、"
                f"目標 {_number(target)}、達成率 {_number(attainment)}%",
                {
                    "item": "indicator",
                    "id": indicator.get("id"),
                    "value": value,
                    "target": target,
                    "attainment": attainment,
                    "unit": indicator.get("unit"),
                },
                _snapshot_source(snapshot),
            )
        )
    return lines


def _snapshot_line(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    report = snapshot.report
    fetched = snapshot.fetched_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return {
        "text": f"成果指標のスナップショット（{report.get('fiscal_year_label')}、{fetched} 取得）",
        "source_events": [],
        "source": _snapshot_source(snapshot),
        "detail": dict(report),
    }


def _snapshot_source(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    return {
        "kind": "metrics_snapshot",
        "report": {key: snapshot.report.get(key) for key in SNAPSHOT_IDENTITY},
        "url": snapshot.url,
        "fetched_at": snapshot.fetched_at.isoformat(),
    }


def _line(text: str, detail: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    # No event ids: those of these records are a case's routing decisions and meeting records.
    return {"text": text, "source_events": [], "source": source, "detail": detail}


def _difficult_since(case: CaseState) -> datetime:
    return case.difficult_since or case.routed_at


def _sorted_counts(keys: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(keys).items()))


def _by_area(areas: Iterable[str]) -> dict[str, int]:
    return _sorted_counts(area or UNKNOWN_AREA for area in areas)


def _area_text(window: Window, by_area: Mapping[str, int]) -> str:
    if not by_area:
        return ""
    return "（地域別: " + "、".join(f"{window.area_name(area)} {n}件" for area, n in by_area.items()) + "）"


def _by_tier(cases: Iterable[CaseState]) -> dict[str, int]:
    return dict(sorted(Counter(f"tier{c.tier}" for c in cases).items()))


def _tier_text(cases: list[CaseState]) -> str:
    tiers = _by_tier(cases)
    return "（" + "、".join(f"tier {k.removeprefix('tier')}: {n}件" for k, n in tiers.items()) + "）" if tiers else ""


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _latest_decisions(session: Session, municipality_code: str) -> dict[str, CaseDecision]:
    """Each case's latest decision: when it was last reviewed, whether its plan awaits approval, whether it
    was closed."""
    decisions = session.exec(
        select(CaseDecision)
        .join(CaseState, col(CaseState.case_id) == col(CaseDecision.case_id))
        .where(CaseState.municipality_code == municipality_code)
        .order_by(col(CaseDecision.recorded_at), col(CaseDecision.id))
    )
    return {decision.case_id: decision for decision in decisions.all()}
