"""Conference's logic on PostgreSQL: bookings that never overlap, invitations (and calendars) follow the
case, reschedule and cancel, plans approved where the municipality approves them, the 推進会議 series
and its agenda."""

import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from icalendar import Calendar
from sqlalchemy import Engine
from sqlmodel import Session, col, select

import services.conference.app  # noqa: F401 - registers the conference tables
from services.conference.agenda import IndicatorSnapshot, build_agenda
from services.conference.api import to_ical
from services.conference.case_meetings import apply_referral_requested, apply_referral_status, apply_routing_decided
from services.conference.config import MunicipalityConference, PromotionMeetingConfig, load_configs
from services.conference.errors import MeetingNotScheduled
from services.conference.meetings import (
    calendar_meetings,
    cancel,
    list_meetings,
    record_attendance,
    record_decision,
    reschedule,
)
from services.conference.models import AttendanceCreate, CaseReferral, ConferenceOutbox, DecisionCreate, Meeting
from services.conference.promotion_meetings import next_series_date, schedule_promotion_meeting
from shared import db
from shared.directory import demo_directory_path
from shared.events import (
    AttendanceRecord,
    ConferenceCancelled,
    ConferenceDecisionRecorded,
    ConferenceRescheduled,
    DataT,
    EngagedAgency,
    Envelope,
    MeetingInvitation,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    RoutingDecided,
    decode,
    new_event,
)
from shared.settings import Settings


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(settings, "conference")
    db.upgrade(engine, "conference")
    yield engine
    engine.dispose()


def configs(tmp_path: Path, **conference: object) -> dict[str, MunicipalityConference]:
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["conference"] = conference
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_configs([path])


def decided(
    case_id: str,
    agencies: list[str],
    tier: int = 2,
    urgency: str = "urgent",
    *,
    at: datetime | None = None,
    gaps: tuple[str, ...] = (),
    sequence: int = 1,
    patterns: tuple[str, ...] = ("multiple_members",),
) -> RoutingDecided:
    return RoutingDecided(
        case_id=case_id,
        decision_id=str(uuid.uuid4()),
        sequence=sequence,
        tier=tier,
        patterns=list(patterns),
        lead="nabari-houkatsu",
        engaged=[EngagedAgency(agency_id=a, agency_type="t", rule_id="partner", legal_basis="x") for a in agencies],
        resource_gaps=list(gaps),
        directory_version="v",
        urgency=urgency,
        decided_at=at or datetime.now(UTC),
    )


def as_event(data: DataT, case_id: str | None = None) -> Envelope[DataT]:
    """An event as the consumer hands it to an effect, in the demo municipality."""
    return new_event(data, source="/t", subject=case_id or "t", municipality_code="242080")


def referral(case_id: str, agency_id: str, referral_id: str | None = None) -> Envelope[ReferralRequested]:
    return as_event(
        ReferralRequested(
            referral_id=referral_id or str(uuid.uuid4()),
            case_id=case_id,
            decision_id="d",
            agency_id=agency_id,
            agency_type="t",
            tier=2,
            rule_id="reroute",
            legal_basis="x",
            requested_at=datetime.now(UTC),
        )
    )


def decided_event(
    case_id: str, agencies: list[str], tier: int = 2, urgency: str = "urgent", **more: Any
) -> Envelope[RoutingDecided]:
    return new_event(
        decided(case_id, agencies, tier, urgency, **more), source="/t", subject=case_id, municipality_code="242080"
    )


def hold(session: Session, meeting: Meeting, config: MunicipalityConference) -> Meeting:
    """The meeting was held (decisions belong to a held meeting's record)."""
    lead = AttendanceRecord(participant="nabari-houkatsu", kind="agency", sector="welfare", attended=True)
    return record_attendance(session, meeting, AttendanceCreate(attendance=[lead]), config)


def staged(session: Session) -> list[str]:
    return [row.topic for row in session.exec(select(ConferenceOutbox).order_by(col(ConferenceOutbox.id))).all()]


def invitation_rows(session: Session) -> list[ConferenceOutbox]:
    query = select(ConferenceOutbox).where(ConferenceOutbox.topic == MeetingInvitation.topic)
    return list(session.exec(query.order_by(col(ConferenceOutbox.id))).all())


def feed(session: Session, agency_id: str) -> list[Any]:
    """The VEVENTs of an agency's iCalendar feed, parsed back; the feed is a published one (METHOD:PUBLISH)."""
    calendar = Calendar.from_ical(to_ical(agency_id, calendar_meetings(session, agency_id)))
    assert str(calendar["METHOD"]) == "PUBLISH"
    return list(calendar.walk("VEVENT"))


def published(session: Session, model: type[DataT]) -> list[Envelope[DataT]]:
    """The events of `model` conference staged for publication, in order."""
    query = select(ConferenceOutbox).where(ConferenceOutbox.topic == model.topic).order_by(col(ConferenceOutbox.id))
    return [decode(row.payload.encode(), model) for row in session.exec(query).all()]


def test_invitations_follow_the_agencies_on_the_case(engine: Engine, tmp_path: Path) -> None:
    confs = configs(tmp_path)
    case_id = str(uuid.uuid4())
    event = new_event(
        decided(case_id, ["nabari-houkatsu", "hoken-07"]), source="/t", subject=case_id, municipality_code="242080"
    )
    with db.transaction(engine) as session:
        apply_routing_decided(session, event, confs)
        [meeting] = list_meetings(session, case_id=case_id)
        assert meeting.participants == ["hoken-07", "nabari-houkatsu"]
        assert meeting.starts_at is not None and meeting.deadline is not None
        assert meeting.starts_at <= meeting.deadline, "urgent: within two business days"
        apply_referral_requested(session, referral(case_id, "mie-hikikomori"))
        assert meeting.participants == ["hoken-07", "mie-hikikomori", "nabari-houkatsu"]
        apply_referral_status(
            session,
            as_event(
                ReferralStatusChanged(
                    referral_id="r",
                    case_id=case_id,
                    agency_id="hoken-07",
                    from_status="requested",
                    to_status="rejected",
                    reason_code="no_capacity",
                    changed_by="hoken-07",
                    changed_at=datetime.now(UTC),
                )
            ),
        )
        assert meeting.participants == ["mie-hikikomori", "nabari-houkatsu"]
        assert meeting.sequence == 2
        topics = staged(session)
        invitations = [
            (row.key, decode(row.payload.encode(), MeetingInvitation).data) for row in invitation_rows(session)
        ]
        feeds = {a: feed(session, a) for a in ("hoken-07", "mie-hikikomori", "hoken-08")}
    assert topics.count("marugoto.conference.scheduled") == 1
    assert topics.count("marugoto.conference.rescheduled") == 2
    # Each invitation is keyed by the agency it is for, so an agency's integration reads only its own.
    assert all(key == invitation.agency_id for key, invitation in invitations)
    assert [(i.agency_id, i.status) for _, i in invitations if i.agency_id == "hoken-07"] == [
        ("hoken-07", "invited"),
        ("hoken-07", "updated"),
        ("hoken-07", "withdrawn"),
    ]
    assert ("mie-hikikomori", "invited") in [(i.agency_id, i.status) for _, i in invitations]

    # The withdrawn agency's calendar keeps the meeting, cancelled with a higher SEQUENCE, so its client drops it.
    uid = f"{meeting.id}@marugoto"
    assert {(str(e["UID"]), str(e["STATUS"]), int(e["SEQUENCE"])) for e in feeds["hoken-07"]} == {(uid, "CANCELLED", 2)}
    assert {(str(e["UID"]), str(e["STATUS"]), int(e["SEQUENCE"])) for e in feeds["mie-hikikomori"]} == {
        (uid, "CONFIRMED", 2)
    }
    assert feeds["hoken-08"] == [], "never invited, never in the calendar"


def status_changed(
    referral_id: str, case_id: str, agency_id: str, to: ReferralStatus, version: int, *, at: datetime | None = None
) -> Envelope[ReferralStatusChanged]:
    return as_event(
        ReferralStatusChanged(
            referral_id=referral_id,
            case_id=case_id,
            agency_id=agency_id,
            from_status="requested",
            to_status=to,
            reason_code="no_capacity" if to == "rejected" else None,
            changed_by=agency_id,
            changed_at=at or datetime.now(UTC),
            version=version,
        )
    )


def test_a_referral_change_published_late_never_undoes_a_later_one(engine: Engine, tmp_path: Path) -> None:
    """The outbox may publish an earlier change after a later one: the higher version holds."""
    confs = configs(tmp_path)
    accepted_case, rejected_case = str(uuid.uuid4()), str(uuid.uuid4())
    referrals = {accepted_case: str(uuid.uuid4()), rejected_case: str(uuid.uuid4())}

    def moved(case_id: str, to: ReferralStatus, version: int) -> None:
        apply_referral_status(session, status_changed(referrals[case_id], case_id, "hoken-07", to, version))

    with db.transaction(engine) as session:
        for case_id, referral_id in referrals.items():
            apply_referral_requested(session, referral(case_id, "hoken-07", referral_id=referral_id))
            apply_routing_decided(session, decided_event(case_id, ["hoken-07"]), confs)

        # requested (1) → received (2) → accepted (3), delivered as 3 then 2.
        moved(accepted_case, "accepted", 3)
        moved(accepted_case, "received", 2)
        accepted = session.get(CaseReferral, referrals[accepted_case])
        assert accepted is not None and (accepted.status, accepted.version) == ("accepted", 3)

        # requested (1) → received (2) → rejected (3), delivered as 3, then 2, then the request again.
        moved(rejected_case, "rejected", 3)
        invitations_before = len(invitation_rows(session))
        moved(rejected_case, "received", 2)
        apply_referral_requested(session, referral(rejected_case, "hoken-07", referral_id=referrals[rejected_case]))
        rejected = session.get(CaseReferral, referrals[rejected_case])
        assert rejected is not None and (rejected.status, rejected.version) == ("rejected", 3)
        [meeting] = list_meetings(session, case_id=rejected_case)
        assert (meeting.participants, meeting.withdrawn) == (["nabari-houkatsu"], ["hoken-07"])
        assert len(invitation_rows(session)) == invitations_before, "no invitation went out again"

        # A later change does move the referral on.
        moved(accepted_case, "in_progress", 4)
        accepted = session.get(CaseReferral, referrals[accepted_case])
        assert accepted is not None and (accepted.status, accepted.version) == ("in_progress", 4)
        [kept] = list_meetings(session, case_id=accepted_case)
        assert kept.participants == ["hoken-07", "nabari-houkatsu"]


def test_meetings_decided_at_the_same_moment_never_double_book_anyone(engine: Engine, tmp_path: Path) -> None:
    """Decisions applied concurrently, as several consumer instances would, all compete for the lead's time."""
    confs = configs(tmp_path)
    partners = [f"hoken-{n:02d}" for n in range(1, 9)]
    with db.transaction(engine) as session:
        # The partners are in the network already, so the threads race on the booking and nothing else.
        apply_routing_decided(session, decided_event(str(uuid.uuid4()), partners, tier=1), confs)
    threads, per_thread = 6, 5
    start = threading.Barrier(threads)

    def book(n: int) -> None:
        start.wait()
        for k in range(per_thread):
            case_id = str(uuid.uuid4())
            partner = partners[(n + k) % len(partners)]
            with db.transaction(engine) as session:
                apply_routing_decided(session, decided_event(case_id, [partner], urgency="routine"), confs)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(book, range(threads)))

    with db.transaction(engine) as session:
        meetings = list_meetings(session, kind="case_meeting")
    assert len(meetings) == threads * per_thread
    by_participant: defaultdict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for meeting in meetings:
        assert meeting.starts_at is not None and meeting.ends_at is not None, meeting.blockers
        for participant in meeting.participants:
            by_participant[participant].append((meeting.starts_at, meeting.ends_at))
    assert len(by_participant["nabari-houkatsu"]) == threads * per_thread, "the lead is in every meeting"
    for participant, spans in by_participant.items():
        spans.sort()
        for (_, end), (next_start, _) in pairwise(spans):
            assert end <= next_start, f"{participant} is double-booked at {next_start.isoformat()}"


def test_tier1_gets_no_meeting_and_reschedule_and_cancel_keep_their_reason(engine: Engine, tmp_path: Path) -> None:
    confs = configs(tmp_path)
    tier1 = str(uuid.uuid4())
    with db.transaction(engine) as session:
        apply_routing_decided(session, decided_event(tier1, ["hoken-04"], tier=1), confs)
        assert list_meetings(session, case_id=tier1) == []

        case_id = str(uuid.uuid4())
        apply_routing_decided(session, decided_event(case_id, ["hoken-07"]), confs)
        [meeting] = list_meetings(session, case_id=case_id)
        first, first_end = meeting.starts_at, meeting.ends_at
        assert first is not None and first_end is not None
        # From the meeting's own start: the slot it leaves is the one that did not work, so it must move.
        reschedule(session, meeting, confs["242080"], reason="lead unavailable", not_before=first)
        moved = meeting.starts_at
        assert moved is not None and moved >= first_end, "moved to a later slot, clear of the one it left"
        assert meeting.status_reason == "lead unavailable" and meeting.sequence == 1
        cancel(session, meeting, reason="household moved away")
        assert meeting.status == "cancelled"
        with pytest.raises(MeetingNotScheduled):
            cancel(session, meeting, reason="twice")

        other = str(uuid.uuid4())
        apply_routing_decided(session, decided_event(other, ["hoken-08"]), confs)
        [held] = list_meetings(session, case_id=other)
        roles, review = {"hoken-08": "見守り"}, date(2027, 1, 1)
        body = DecisionCreate(plan_approved=True, lead_agency="nabari-houkatsu", roles=roles, next_review=review)
        record_decision(session, hold(session, held, confs["242080"]), body, confs["242080"])

    with db.transaction(engine) as session:
        [rescheduled] = published(session, ConferenceRescheduled)
        [cancelled] = published(session, ConferenceCancelled)
        [decision] = published(session, ConferenceDecisionRecorded)
    assert rescheduled.subject == case_id
    assert (rescheduled.data.meeting_id, rescheduled.data.starts_at) == (meeting.id, moved)
    assert rescheduled.data.reason == "lead unavailable"
    assert (cancelled.data.meeting_id, cancelled.data.reason) == (meeting.id, "household moved away")
    assert decision.subject == other
    assert (decision.data.meeting_id, decision.data.plan_status) == (held.id, "approved")
    assert (decision.data.roles, decision.data.next_review) == (roles, review)


def test_where_the_promotion_meeting_approves_plans_a_case_meeting_only_drafts(engine: Engine, tmp_path: Path) -> None:
    kure_like = configs(tmp_path, promotion_meeting={"approves_plans": True})["242080"]
    case_id = str(uuid.uuid4())
    with db.transaction(engine) as session:
        meeting = Meeting(
            id=str(uuid.uuid4()),
            kind="case_meeting",
            case_id=case_id,
            municipality_code="242080",
            title="t",
            participants=[],
            status="held",
        )
        session.add(meeting)
        body = DecisionCreate(plan_approved=True, lead_agency="nabari-houkatsu", next_review=date(2027, 1, 1))
        assert record_decision(session, meeting, body, kure_like).plan_status == "drafted"
        promotion = Meeting(
            id=str(uuid.uuid4()),
            kind="promotion_meeting",
            municipality_code="242080",
            title="t",
            participants=[],
            status="held",
        )
        session.add(promotion)
        approved = DecisionCreate(
            case_id=case_id, plan_approved=True, lead_agency="nabari-houkatsu", next_review=date(2027, 1, 1)
        )
        assert record_decision(session, promotion, approved, kure_like).plan_status == "approved"


def test_series_cadence() -> None:
    every_two = PromotionMeetingConfig(cadence="every_n_months", every_months=2)  # 盛岡市
    assert next_series_date(every_two, date(2026, 11, 27)) == date(2027, 1, 1)
    fixed = PromotionMeetingConfig(cadence="fixed_months", months=[5, 8, 11, 2])
    assert next_series_date(fixed, date(2026, 11, 27)) == date(2027, 2, 1)
    assert next_series_date(PromotionMeetingConfig(cadence="on_demand"), date(2026, 11, 27)) is None
    # Unless the municipality sets its own, the 推進会議 meets regularly (定期的に): quarterly.
    assert next_series_date(PromotionMeetingConfig(), date(2026, 11, 27)) == date(2027, 2, 1)


def test_promotion_meeting_agenda_after_a_stream_of_consultations_speaks_in_counts(
    engine: Engine, tmp_path: Path
) -> None:
    """Sixteen routing decisions of fifteen cases, mixed tiers, before and after the last 推進会議 (呉市-like):
    the agenda counts them by tier and pattern and names none of them."""
    kure_like = configs(tmp_path, promotion_meeting={"approves_plans": True, "review_after_days": 60})
    config = kure_like["242080"]
    now = datetime.now(UTC)
    routed: defaultdict[str, list[str]] = defaultdict(list)  # case → its routing decisions' event ids
    first_engaged: dict[str, str] = {}  # agency → the event that first engaged it

    def route(session: Session, case_id: str, tier: int, days_ago: int, partners: list[str], **more: Any) -> None:
        at = now - timedelta(days=days_ago)
        event = decided_event(case_id, partners, tier, at=at, **more)
        apply_routing_decided(session, event, kure_like)
        routed[case_id].append(event.id)
        for agency in partners:
            first_engaged.setdefault(agency, event.id)

    def decide(session: Session, meeting: Meeting, case_id: str, *, approved: bool) -> None:
        body = DecisionCreate(
            case_id=case_id, plan_approved=approved, lead_agency="nabari-houkatsu", next_review=date(2027, 3, 1)
        )
        record_decision(session, meeting, body, config)

    def case_meeting(session: Session, case_id: str) -> Meeting:
        [meeting] = list_meetings(session, case_id=case_id)
        return meeting if meeting.status == "held" else hold(session, meeting, config)

    plan, stale, approved, tier1, escalated = (str(uuid.uuid4()) for _ in range(5))
    recent = [str(uuid.uuid4()) for _ in range(10)]
    with db.transaction(engine) as session:
        route(session, plan, 2, 120, ["hoken-01"])
        route(session, stale, 3, 118, ["hoken-02", "nabari-jiritsu"], gaps=("shelter",))
        route(session, approved, 2, 115, ["hoken-03"])
        route(session, tier1, 1, 112, ["hoken-04"])
        route(session, escalated, 1, 110, ["hoken-05"])
        known_before = set(first_engaged)
        previous = schedule_promotion_meeting(session, config, not_before=None)
        # The service books only ahead of now; this 推進会議 was held 90 days ago.
        previous.starts_at, previous.ends_at = now - timedelta(days=90), now - timedelta(days=90, hours=-2)
        hold(session, previous, config)

        # Since then: ten new cases (six of tier 2/3), one escalation, and case meetings that draft plans.
        tiers = [2, 3, 1, 2, 1, 2, 3, 1, 2, 1]
        partners = [
            ["hoken-06"],
            ["hoken-07", "nabari-fukushi"],
            ["hoken-08"],
            ["hoken-09", "mie-saposute"],
            ["hoken-10"],
            ["hoken-11"],
            ["hoken-12", "nabari-shakyo"],
            ["hoken-13"],
            ["hoken-06"],
            ["hoken-01"],
        ]
        gaps = {1: ("legal_support_center",), 5: ("legal_support_center", "shelter")}
        patterns = {6: ("prefecture_category",)}
        for n, case_id in enumerate(recent):
            more: dict[str, Any] = {"patterns": patterns[n]} if n in patterns else {}
            route(session, case_id, tiers[n], 30 - 3 * n, partners[n], gaps=gaps.get(n, ()), **more)
        route(session, escalated, 2, 5, ["hoken-05", "nabari-soudan"], sequence=2, patterns=("backup_requested",))
        decide(session, case_meeting(session, approved), approved, approved=True)  # only drafted here
        decide(session, previous, approved, approved=True)  # approved at the 推進会議
        decide(session, case_meeting(session, plan), plan, approved=True)
        decide(session, case_meeting(session, recent[0]), recent[0], approved=False)

        meeting = schedule_promotion_meeting(session, config, not_before=None)
        report = {
            "municipality_code": "242080",
            "fiscal_year": 2026,
            "fiscal_year_label": "令和8年度 (FY2026)",
            "month": None,
            "tier": None,
            "indicators": [{"id": "M8", "value": 15.0}],
        }
        url = "http://metrics:8000/v1/indicators?municipality=242080"
        snapshot = IndicatorSnapshot(report=report, url=url, fetched_at=now)
        agenda = build_agenda(session, config, meeting, snapshot=snapshot, snapshot_error=None, now=now)
        decisions = published(session, ConferenceDecisionRecorded)
    items = agenda["items"]
    assert agenda["since"] == previous.starts_at.isoformat()

    def details(section: str, item: str) -> list[dict[str, Any]]:
        return [line["detail"] for line in items[section]["lines"] if line["detail"]["item"] == item]

    # (ア): agencies first engaged since the last meeting, named without the decision (of a case) that
    # engaged them.
    newcomers = {agency for agency in first_engaged if agency not in known_before}
    assert len(newcomers) == 12 and "mie-saposute" in newcomers and "hoken-01" not in newcomers
    assert {d["agency_id"] for d in details("ア", "agency") if d["new_member"]} == newcomers

    # (ウ): new tier-2/3 cases (the escalated one from its escalation on, by the patterns of its latest
    # decision), the overdue review, the plans awaiting approval: counts, tier-1 cases left out.
    [new], [overdue], [awaiting] = (
        details("ウ", item) for item in ("new_difficult_cases", "overdue_reviews", "plans_awaiting_approval")
    )
    assert new == {
        "item": "new_difficult_cases",
        "cases": 7,
        "by_tier": {"tier2": 5, "tier3": 2},
        "by_pattern": {"backup_requested": 1, "multiple_members": 5, "prefecture_category": 1},
        "by_area": {"unknown": 7},  # no consultation of these cases reached conference
    }
    assert overdue == {"item": "overdue_reviews", "cases": 1, "by_tier": {"tier3": 1}, "review_after_days": 60}, (
        "reviewed cases and the recently escalated one are not overdue"
    )
    assert awaiting == {"item": "plans_awaiting_approval", "plans": 2}
    assert {
        line["detail"]["item"]: line["text"]
        for line in items["ウ"]["lines"]
        if line["detail"]["item"] in {"new_difficult_cases", "overdue_reviews", "plans_awaiting_approval"}
    } == {
        "new_difficult_cases": "新たに tier 2/3 となったケース: 7件（tier 2: 5件、tier 3: 2件）"
        "（地域別: 地域不明 7件）",
        "overdue_reviews": "見直し期日（次回見直し日、なければ60日）を過ぎたケース: 1件（tier 3: 1件）",
        "plans_awaiting_approval": "承認待ちの支援プラン: 2件",
    }

    # (エ): the router's resource gaps reported since the last meeting, as cases by type.
    assert [line["detail"] for line in items["エ"]["lines"]] == [
        {"item": "resource_gaps", "cases": 2, "partner_types": 2, "by_area": {"unknown": 2}},
        {"item": "resource_gap", "partner_type": "legal_support_center", "cases": 2, "by_area": {"unknown": 2}},
        {"item": "resource_gap", "partner_type": "shelter", "cases": 1, "by_area": {"unknown": 1}},
    ]

    # (オ): the indicator snapshot is no event; its line names the report it is and when it was fetched.
    [results] = items["オ"]["lines"]
    assert results["source_events"] == []
    assert results["source"] == {
        "kind": "metrics_snapshot",
        "report": {k: report[k] for k in ("municipality_code", "fiscal_year", "fiscal_year_label", "month", "tier")},
        "url": url,
        "fetched_at": now.isoformat(),
    }
    assert results["detail"] == report and "令和8年度" in results["text"]

    # No case id, nor any event id of a case (its routing decisions, its meetings' decisions), anywhere.
    text = json.dumps(agenda, ensure_ascii=False)
    case_ids = {plan, stale, approved, tier1, escalated, *recent}
    event_ids = {event_id for ids in routed.values() for event_id in ids} | {d.id for d in decisions}
    assert [name for name in case_ids | event_ids if name in text] == []
    for section in ("ア", "イ", "ウ", "エ"):
        for line in items[section]["lines"]:
            assert line["source_events"] == [] and line["source"]["kind"] == "conference_records"
