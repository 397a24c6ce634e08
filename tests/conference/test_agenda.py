"""The 推進会議 agenda by item (ア)–(オ) of 実施要領 3(4)ウ, built from the events conference follows: each
item filled, counted since the last held 推進会議, a closed case without a next review handled, and no
case named anywhere; and the 推進会議 series kept scheduled a quarter ahead by default."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.conference.agenda import IndicatorSnapshot, build_agenda
from services.conference.case_meetings import (
    apply_consultation_received,
    apply_contact_recorded,
    apply_referral_requested,
    apply_referral_status,
    apply_routing_decided,
)
from services.conference.config import MunicipalityConference
from services.conference.meetings import list_meetings, record_attendance, record_decision
from services.conference.models import AttendanceCreate, DecisionCreate, Meeting
from services.conference.promotion_meetings import keep_series_scheduled, schedule_promotion_meeting
from shared import db
from shared.calendar import JST
from shared.consultation import ConsultationSummary
from shared.events import (
    AttendanceRecord,
    ConsultationReceived,
    ContactRecorded,
    Envelope,
    MeetingInvitation,
    ReferralRequested,
    RoutingDecided,
    new_event,
)
from tests.conference.test_meetings import configs, decided, engine, published, status_changed

__all__ = ["engine"]  # the fixture, shared with test_meetings

CODE, LEAD = "242080", "nabari-houkatsu"


def received(
    case_id: str,
    area: str,
    household: list[list[str]],
    *,
    at: datetime,
    fits: bool = True,
    contact: str = "reached",
) -> Envelope[ConsultationReceived]:
    """A consultation opened the case: its area, each member's issue tags, 制度の狭間, whether reached."""
    summary = ConsultationSummary.model_validate(
        {
            "area": area,
            "pathway": "family_or_community",
            "contact": contact,
            "existing_services_fit": fits,
            "household": [
                {"relation": "self" if n == 0 else "child", "issues": tags} for n, tags in enumerate(household)
            ],
        }
    )
    data = ConsultationReceived(
        case_id=case_id,
        consultation_id=str(uuid.uuid4()),
        submitted_by="nabari-shakyo",
        received_at=at,
        consultation=summary,
    )
    return new_event(data, source="/t", subject=case_id, municipality_code=CODE)


def reached(case_id: str, at: datetime) -> Envelope[ContactRecorded]:
    data = ContactRecorded(
        case_id=case_id,
        contact_id=str(uuid.uuid4()),
        submitted_by="hoken-03",
        received_at=at,
        pathway="self",
        found_by="outreach",
        contact="reached",
    )
    return new_event(data, source="/t", subject=case_id, municipality_code=CODE)


def routed(
    case_id: str, agencies: list[str], tier: int, *, at: datetime, kind: str = "initial", sequence: int = 1, **more: Any
) -> Envelope[RoutingDecided]:
    data = decided(case_id, agencies, tier, at=at, sequence=sequence, **more).model_copy(update={"kind": kind})
    return new_event(data, source="/t", subject=case_id, municipality_code=CODE)


def requested(
    case_id: str, agency_id: str, referral_id: str, *, at: datetime, replaces: str | None = None
) -> Envelope[ReferralRequested]:
    data = ReferralRequested(
        referral_id=referral_id,
        case_id=case_id,
        decision_id="d",
        agency_id=agency_id,
        agency_type="t",
        tier=2,
        rule_id="reroute" if replaces else "partner",
        legal_basis="x",
        requested_at=at,
        replaces_referral_id=replaces,
    )
    return new_event(data, source="/t", subject=case_id, municipality_code=CODE)


def apply(session: Session, event: Envelope[Any], confs: dict[str, MunicipalityConference]) -> None:
    """Apply an event as conference's consumer would."""
    match event.data:
        case ConsultationReceived():
            apply_consultation_received(session, event)
        case ContactRecorded():
            apply_contact_recorded(session, event)
        case RoutingDecided():
            apply_routing_decided(session, event, confs)


def hold_at(
    session: Session,
    meeting: Meeting,
    config: MunicipalityConference,
    starts_at: datetime,
    *,
    present: list[str],
    absent: tuple[str, ...] = (),
    agenda: dict[str, Any] | None = None,
) -> Meeting:
    """The meeting took place at `starts_at` (the service books only ahead of now), with who came."""
    meeting.starts_at, meeting.ends_at = starts_at, starts_at + timedelta(hours=1)
    attendance = [
        AttendanceRecord(participant=agency, kind="agency", sector="welfare", attended=agency in present)
        for agency in [*present, *absent]
    ]
    return record_attendance(session, meeting, AttendanceCreate(attendance=attendance), config, agenda=agenda)


def plan_meeting(session: Session, case_id: str, participants: list[str]) -> Meeting:
    """A 重層的支援会議 about the case (its scheduling, with consent, is tested elsewhere)."""
    meeting = Meeting(
        id=str(uuid.uuid4()),
        kind="plan_meeting",
        case_id=case_id,
        municipality_code=CODE,
        title="重層的支援会議",
        participants=participants,
    )
    session.add(meeting)
    return meeting


@dataclass
class World:
    """A municipality's records before and since its last 推進会議, and the agenda of the next one."""

    config: MunicipalityConference
    now: datetime
    cases: dict[str, str]  # name → case id
    named: set[str]  # every id the agenda must not carry: cases, referrals, events
    promotion: Meeting
    agenda: dict[str, Any]

    def details(self, section: str, item: str) -> list[dict[str, Any]]:
        return [line["detail"] for line in self.agenda["items"][section]["lines"] if line["detail"]["item"] == item]


SNAPSHOT = {
    "municipality_code": CODE,
    "fiscal_year": 2026,
    "fiscal_year_label": "令和8年度 (FY2026)",
    "month": None,
    "tier": None,
    "indicators": [
        {
            "id": "M8",
            "name_ja": "相談件数（実件数）",
            "unit": "count",
            "value": 5.0,
            "target": 10.0,
            "attainment": 50.0,
        },
        {
            "id": "M13",
            "name_ja": "ケース会議の開催回数",
            "unit": "count",
            "value": 3.0,
            "target": None,
            "attainment": None,
        },
    ],
}


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    """Before the last 推進会議 (60 days ago): a poverty case with a shelter gap whose meeting was held, and
    a person not yet reached. Since: an 8050 household (a rejection re-routed), a household in 制度の狭間
    escalated to prefecture support, two people not yet reached (one reached later), a case closed without
    見守り; a case meeting and two 重層的支援会議 held."""
    confs = configs(tmp_path, promotion_meeting={"review_after_days": 20})
    config = confs[CODE]
    now = datetime.now(UTC)
    ago = {days: now - timedelta(days=days) for days in (100, 90, 80, 60, 30, 20, 10, 5, 3, 2, 1)}
    cases = {
        name: str(uuid.uuid4()) for name in ("old", "unreached_old", "8050", "gap", "unreached", "reached", "closed")
    }
    rejected, rerouted = str(uuid.uuid4()), str(uuid.uuid4())
    events: list[Envelope[Any]] = [
        received(cases["old"], "chiiki-02", [["poverty"]], at=ago[100]),
        routed(cases["old"], ["hoken-02", "nabari-jiritsu"], 2, at=ago[100], gaps=("shelter",)),
        received(cases["unreached_old"], "chiiki-05", [["social_isolation"]], at=ago[80], contact="not_yet_reached"),
        routed(cases["unreached_old"], ["hoken-05"], 1, at=ago[80], patterns=()),
    ]
    since: list[Envelope[Any]] = [
        received(cases["8050"], "chiiki-07", [["long_term_care"], ["hikikomori", "employment"]], at=ago[20]),
        routed(cases["8050"], ["hoken-07", "mie-hikikomori", "mie-saposute"], 2, at=ago[20]),
        received(cases["gap"], "chiiki-01", [["poverty", "legal"]], at=ago[10], fits=False),
        routed(
            cases["gap"],
            ["nabari-jiritsu"],
            2,
            at=ago[10],
            gaps=("legal_support_center",),
            patterns=("multiple_issues", "gap_between_systems"),
        ),
        routed(
            cases["gap"],
            ["nabari-jiritsu", "mie-dv"],
            3,
            at=ago[5],
            kind="prefecture_support",
            sequence=2,
            patterns=("prefecture_category",),
        ),
        received(cases["unreached"], "chiiki-03", [["social_isolation"]], at=ago[5], contact="not_yet_reached"),
        routed(cases["unreached"], ["hoken-03"], 1, at=ago[5], patterns=()),
        received(cases["reached"], "chiiki-03", [["hikikomori"]], at=ago[3], contact="not_yet_reached"),
        routed(cases["reached"], ["hoken-03"], 1, at=ago[3], patterns=()),
        reached(cases["reached"], ago[1]),
        received(cases["closed"], "chiiki-04", [["disability"], ["long_term_care"]], at=ago[30]),
        routed(cases["closed"], ["hoken-04"], 2, at=ago[30], gaps=("shelter",)),
    ]
    with db.transaction(engine) as session:
        for event in events:
            apply(session, event, confs)
        [old_meeting] = list_meetings(session, case_id=cases["old"])
        hold_at(session, old_meeting, config, ago[90], present=[LEAD, "hoken-02"])
        previous = schedule_promotion_meeting(session, config, not_before=None)
        hold_at(session, previous, config, ago[60], present=[LEAD])

        for event in since:
            apply(session, event, confs)
        # The prefectural ひきこもり centre turns the 8050 household down; the welfare office takes its place.
        apply_referral_requested(session, requested(cases["8050"], "mie-hikikomori", rejected, at=ago[20]))
        turned_down = status_changed(rejected, cases["8050"], "mie-hikikomori", "rejected", 3, at=ago[10])
        apply_referral_status(session, turned_down)
        rerouting = requested(cases["8050"], "nabari-fukushi", rerouted, at=ago[10], replaces=rejected)
        apply_referral_requested(session, rerouting)
        [case_meeting] = list_meetings(session, case_id=cases["8050"])
        hold_at(session, case_meeting, config, ago[10], present=[LEAD, "hoken-07"], absent=("mie-saposute",))
        drafted = DecisionCreate(lead_agency=LEAD, next_review=(now + timedelta(days=30)).date())
        record_decision(session, case_meeting, drafted, config)
        gap_plan = plan_meeting(session, cases["gap"], [LEAD, "nabari-jiritsu"])
        hold_at(session, gap_plan, config, ago[2], present=[LEAD])
        closing = plan_meeting(session, cases["closed"], [LEAD, "hoken-04"])
        hold_at(session, closing, config, ago[1], present=[LEAD, "hoken-04"])
        closure = DecisionCreate(type="closure", closure_reason="moved_away", lead_agency=LEAD)
        record_decision(session, closing, closure, config)

        promotion = schedule_promotion_meeting(session, config, not_before=None)
        snapshot = IndicatorSnapshot(
            report=SNAPSHOT, url="http://metrics/v1/indicators?municipality=242080", fetched_at=now
        )
        agenda = build_agenda(session, config, promotion, snapshot=snapshot, snapshot_error=None, now=now)
    applied: list[Envelope[Any]] = [*events, *since, turned_down, rerouting]
    named = {*cases.values(), rejected, rerouted, *(e.id for e in applied)}
    return World(config, now, cases, named, promotion, agenda)


def test_agency_parts_and_the_network_ア(world: World) -> None:
    [network] = world.details("ア", "network")
    # Joined by routing decisions or referrals: three agencies before the last 推進会議, seven since (the
    # welfare office came in by a re-routed referral).
    assert network == {
        "item": "network",
        "members": 10,
        "new_members": 7,
        "not_attending": 3,
        "not_attending_agencies": ["mie-saposute", "nabari-fukushi", "nabari-jiritsu"],
    }
    agencies = {d["agency_id"]: d for d in world.details("ア", "agency")}
    parts = {
        a: (d["engaged_cases"], d["new_member"], d["meetings_attended"], d["meetings_invited"])
        for a, d in agencies.items()
    }
    assert parts == {
        "hoken-02": (1, False, 0, 0),  # its case meeting was before the last 推進会議
        "hoken-03": (2, True, 0, 0),
        "hoken-04": (0, True, 1, 1),  # its case was closed without 見守り
        "hoken-05": (1, False, 0, 0),
        "hoken-07": (1, True, 1, 1),
        "mie-dv": (1, True, 0, 0),
        "mie-hikikomori": (0, True, 0, 0),  # it turned the case down
        "mie-saposute": (1, True, 0, 1),
        "nabari-fukushi": (1, True, 0, 1),  # re-routed to, after its case meeting was booked
        "nabari-jiritsu": (2, False, 0, 1),
    }
    [line] = [line for line in world.agenda["items"]["ア"]["lines"] if line["detail"].get("agency_id") == "hoken-07"]
    assert line["text"].startswith("まちの保健室 地域07（t）: 関わっているケース 1件")


def test_how_agencies_worked_together_イ(world: World) -> None:
    [joint] = world.details("イ", "joint_engagements")
    assert joint["cases"] == 3
    assert [(p["agencies"], p["cases"]) for p in joint["by_pair"]] == [
        (["hoken-02", "nabari-jiritsu"], 1),
        (["hoken-07", "mie-saposute"], 1),
        (["hoken-07", "nabari-fukushi"], 1),
        (["mie-dv", "nabari-jiritsu"], 1),
        (["mie-saposute", "nabari-fukushi"], 1),
    ]
    [held] = world.details("イ", "meetings_held")
    assert held == {
        "item": "meetings_held",
        "meetings": 3,
        "by_kind": {"case_meeting": 1, "support_meeting": 0, "plan_meeting": 2},
    }
    [handoffs] = world.details("イ", "handoffs")
    assert handoffs["handoffs"] == 2 and handoffs["by_kind"] == {"prefecture_support": 1, "reroute": 1}
    assert handoffs["by_pair"] == [
        {"kind": "prefecture_support", "from_agency": LEAD, "to_agency": "mie-dv", "handoffs": 1},
        {"kind": "reroute", "from_agency": "mie-hikikomori", "to_agency": "nabari-fukushi", "handoffs": 1},
    ]
    [text] = [line["text"] for line in world.agenda["items"]["イ"]["lines"] if line["detail"]["item"] == "handoffs"]
    assert "つなぎ直し（受入不可）: 三重県ひきこもり地域支援センター → 名張市福祉事務所 1件" in text


def test_residents_needs_by_area_ウ(world: World) -> None:
    [new] = world.details("ウ", "new_difficult_cases")
    # The closed case arose in the period: a need seen, though no longer followed.
    assert new == {
        "item": "new_difficult_cases",
        "cases": 3,
        "by_tier": {"tier2": 2, "tier3": 1},
        "by_pattern": {"multiple_members": 2, "prefecture_category": 1},
        "by_area": {"chiiki-01": 1, "chiiki-04": 1, "chiiki-07": 1},
    }
    [issues] = world.details("ウ", "issues")
    assert (issues["cases"], issues["by_issue"]) == (
        5,
        {
            "disability": 1,
            "employment": 1,
            "hikikomori": 2,
            "legal": 1,
            "long_term_care": 2,
            "poverty": 1,
            "social_isolation": 1,
        },
    )
    assert issues["by_area"]["chiiki-03"] == {"cases": 2, "by_issue": {"hikikomori": 1, "social_isolation": 1}}
    assert sorted(issues["by_area"]) == ["chiiki-01", "chiiki-03", "chiiki-04", "chiiki-07"]
    assert world.details("ウ", "services_gap") == [{"item": "services_gap", "cases": 1, "by_area": {"chiiki-01": 1}}]
    # Still not reached now, whenever the consultation came; the one reached later no longer counts.
    assert world.details("ウ", "not_yet_reached") == [
        {"item": "not_yet_reached", "cases": 2, "by_area": {"chiiki-03": 1, "chiiki-05": 1}}
    ]
    [line] = [line for line in world.agenda["items"]["ウ"]["lines"] if line["detail"]["item"] == "not_yet_reached"]
    assert line["text"] == "本人とまだ接触できていないケース（現時点）: 2件（地域別: 地域03 1件、地域05 1件）"
    # Overdue: only the old case (no decision, difficult for 100 days > 20); the 8050 one has a review
    # ahead, the closed one (終結 without a next review) is no longer followed.
    assert world.details("ウ", "overdue_reviews") == [
        {"item": "overdue_reviews", "cases": 1, "by_tier": {"tier2": 1}, "review_after_days": 20}
    ]
    assert world.details("ウ", "plans_awaiting_approval") == [{"item": "plans_awaiting_approval", "plans": 1}]


def test_resources_missing_by_type_and_area_エ(world: World) -> None:
    # The shelter gap of the old case was reported before the last 推進会議.
    assert [line["detail"] for line in world.agenda["items"]["エ"]["lines"]] == [
        {"item": "resource_gaps", "cases": 2, "partner_types": 2, "by_area": {"chiiki-01": 1, "chiiki-04": 1}},
        {"item": "resource_gap", "partner_type": "legal_support_center", "cases": 1, "by_area": {"chiiki-01": 1}},
        {"item": "resource_gap", "partner_type": "shelter", "cases": 1, "by_area": {"chiiki-04": 1}},
    ]


def test_indicators_against_their_targets_オ(world: World) -> None:
    identity, *targets = world.agenda["items"]["オ"]["lines"]
    assert identity["detail"] == SNAPSHOT and identity["source"]["kind"] == "metrics_snapshot"
    # M13 has no target: only M8 is set against one.
    [m8] = targets
    assert m8["detail"] == {
        "item": "indicator",
        "id": "M8",
        "value": 5.0,
        "target": 10.0,
        "attainment": 50.0,
        "unit": "count",
    }
    assert m8["text"] == "相談件数（実件数）（M8）: 実績 5、目標 10、達成率 50%"
    assert m8["source"] == identity["source"] and m8["source_events"] == []


def test_the_agenda_names_no_case_nor_any_event_of_one(world: World) -> None:
    text = json.dumps(world.agenda, ensure_ascii=False)
    assert [name for name in world.named if name in text] == []
    assert list(world.agenda["items"]) == ["ア", "イ", "ウ", "エ", "オ"]
    for item in world.agenda["items"].values():
        assert item["lines"]
        for line in item["lines"]:
            assert line["source_events"] == [] and set(line) == {"text", "detail", "source", "source_events"}
            assert line["source"]["kind"] in {"conference_records", "metrics_snapshot"}


def test_the_next_agenda_counts_from_the_promotion_meeting_just_held(world: World, engine: Engine) -> None:
    with db.transaction(engine) as session:
        promotion = session.merge(world.promotion)
        hold_at(session, promotion, world.config, world.now - timedelta(hours=1), present=[LEAD], agenda=world.agenda)
        later = str(uuid.uuid4())
        apply(session, received(later, "chiiki-09", [["housing"]], at=world.now), {CODE: world.config})
        apply(session, routed(later, ["hoken-09"], 1, at=world.now, patterns=()), {CODE: world.config})
        following = schedule_promotion_meeting(session, world.config, not_before=None)
        agenda = build_agenda(session, world.config, following, snapshot=None, snapshot_error="offline", now=world.now)
    items = agenda["items"]

    def detail(section: str, item: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [
            line["detail"] for line in items[section]["lines"] if line["detail"]["item"] == item
        ]
        [one] = found
        return one

    assert agenda["since"] == (world.now - timedelta(hours=1)).isoformat()
    assert (detail("ア", "network")["members"], detail("ア", "network")["new_members"]) == (11, 1)
    assert detail("イ", "meetings_held")["meetings"] == 0 and detail("イ", "handoffs")["handoffs"] == 0
    assert detail("ウ", "new_difficult_cases")["cases"] == 0
    assert (detail("ウ", "issues")["cases"], detail("ウ", "issues")["by_issue"]) == (1, {"housing": 1})
    assert detail("ウ", "not_yet_reached")["cases"] == 2, "a state, not a count of the period"
    assert detail("エ", "resource_gaps")["cases"] == 0
    # Current engagements are not of the period: they stay.
    assert detail("イ", "joint_engagements")["cases"] == 3
    assert [line["text"] for line in items["オ"]["lines"]] == ["成果指標を取得できませんでした: offline"]


def test_by_default_the_series_keeps_the_next_promotion_meeting_scheduled_a_quarter_ahead(
    engine: Engine, tmp_path: Path
) -> None:
    confs = configs(tmp_path)  # the municipality sets no cadence
    config = confs[CODE]
    today = datetime.now(JST).date()
    with db.transaction(engine) as session:
        assert keep_series_scheduled(session, confs) == 1
        assert keep_series_scheduled(session, confs) == 0, "one upcoming meeting is enough"
        [series] = list_meetings(session, kind="promotion_meeting")
        assert series.participants == [LEAD] and series.starts_at is not None
        assert first_of_month(today, 3) <= series.starts_at.astimezone(JST).date() < first_of_month(today, 4)

        # An agency that joins the network meanwhile is invited on the next pass.
        apply(session, routed(str(uuid.uuid4()), ["hoken-07"], 1, at=datetime.now(UTC), patterns=()), confs)
        assert keep_series_scheduled(session, confs) == 1, "the meeting changed: its invitations are to publish"
        assert series.participants == ["hoken-07", LEAD]
        invited = [
            e.data.status
            for e in published(session, MeetingInvitation)
            if e.data.meeting_id == series.id and e.data.agency_id == "hoken-07"
        ]
        assert invited == ["invited"]

        # Once it is held, the next one is a quarter after it.
        held_day = series.starts_at.astimezone(JST).date()
        record_attendance(session, series, AttendanceCreate(attendance=[present(LEAD)]), config)
        assert keep_series_scheduled(session, confs) == 1
        [following] = [m for m in list_meetings(session, kind="promotion_meeting") if m.status == "scheduled"]
        assert following.starts_at is not None
        assert first_of_month(held_day, 3) <= following.starts_at.astimezone(JST).date() < first_of_month(held_day, 4)


def test_an_on_demand_municipality_has_no_series(engine: Engine, tmp_path: Path) -> None:
    confs = configs(tmp_path, promotion_meeting={"cadence": "on_demand"})
    with db.transaction(engine) as session:
        assert keep_series_scheduled(session, confs) == 0
        assert list_meetings(session, kind="promotion_meeting") == []


def first_of_month(day: date, months_ahead: int) -> date:
    year, month = divmod(day.month - 1 + months_ahead, 12)
    return date(day.year + year, month + 1, 1)


def present(agency: str) -> AttendanceRecord:
    return AttendanceRecord(participant=agency, kind="agency", sector="welfare", attended=True)


def test_an_erased_cases_area_is_counted_as_unknown() -> None:
    """消去 empties conference's copy of a case's area: the agenda counts it under 地域不明, not under ""."""
    from services.conference.agenda import UNKNOWN_AREA, _by_area

    assert _by_area(["chiiki-01", "", "chiiki-01"]) == {"chiiki-01": 2, UNKNOWN_AREA: 1}
