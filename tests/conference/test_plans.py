"""The 支援プラン of a tier-2/3 case: drafted by the lead pre-filled from the case, revised with a reason,
approved by the 支援決定 of a 重層的支援会議 (or, where configured, a case meeting with consent), read
only by those with a part in the case (each read on the ledger), monitored and evaluated on the
business-day calendar, and overdue monitorings counted on the 推進会議 agenda without naming a case."""

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import select

from services.conference.case_meetings import apply_consent, apply_referral_requested, apply_routing_decided
from services.conference.meetings import list_meetings, record_decision
from services.conference.models import (
    CaseState,
    ConferenceOutbox,
    DecisionCreate,
    MonitoringCreate,
    PlanCreate,
    SupportPlan,
)
from services.conference.plans import apply_monitoring_due, approve, draft, get_plan, record_monitoring
from shared import db
from shared.auth import Scope
from shared.calendar import JST
from shared.events import (
    ConferenceDecisionRecorded,
    ConsentGiven,
    MonitoringDue,
    MonitoringRecorded,
    SupportPlanChanged,
    new_event,
)
from tests.conference.test_meeting_kinds import consent, problem
from tests.conference.test_meetings import configs, decided_event, hold, published, referral
from tests.conference.test_need_to_know import (
    LEAD,
    NABARI,
    NEIGHBOUR,
    Conference,
    conference,
    engine,
    routed,
    two_municipalities,
)

__all__ = ["conference", "engine", "two_municipalities"]  # fixtures, shared with test_need_to_know

GOALS = ["Aさんの通院に同行し服薬を安定させる", "世帯の家計を立て直す"]
ATTENDED = {"attendance": [{"participant": LEAD, "kind": "agency", "sector": "welfare", "attended": True}]}


def plan_events(conference: Conference, case_id: str) -> list[SupportPlanChanged]:
    with db.transaction(conference.engine) as session:
        return [e.data for e in published(session, SupportPlanChanged) if e.data.case_id == case_id]


def raw_events(engine: Engine, case_id: str) -> str:
    """Every payload conference staged keyed by the case, as text: what leaves the service."""
    with db.transaction(engine) as session:
        rows = session.exec(select(ConferenceOutbox).where(ConferenceOutbox.key == case_id)).all()
        return "\n".join(row.payload for row in rows)


async def approved_at_plan_meeting(
    conference: Conference, lead: dict[str, str], case_id: str, **decision: Any
) -> dict[str, Any]:
    """Convene and hold a 重層的支援会議 about the case and record its 支援決定; the meeting as answered."""
    client = conference.client
    created = await client.post("/v1/plan-meetings", json={"case_id": case_id}, headers=lead)
    assert created.status_code == 201, created.text
    path = f"/v1/meetings/{created.json()['id']}"
    assert (await client.post(f"{path}/attendance", json=ATTENDED, headers=lead)).status_code == 200
    body = {"type": "support_decision", "lead_agency": LEAD, "next_review": "2027-03-01", **decision}
    decided = await client.post(f"{path}/decisions", json=body, headers=lead)
    assert decided.status_code == 201, decided.text
    meeting: dict[str, Any] = decided.json()
    return meeting


async def test_the_lead_drafts_a_plan_pre_filled_from_the_case_and_revises_it_with_a_reason(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id, light = str(uuid.uuid4()), str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    conference.route(routed(light, ["hoken-07"], tier=1))
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    path = f"/v1/cases/{case_id}/plans"

    # Only the lead (or an operator) drafts; an engaged agency is told so, anyone else hears of no case.
    engaged = bearer("hoken-07", Scope.coordinator, municipalities=(NABARI,))
    stranger = bearer("hoken-08", Scope.coordinator, municipalities=(NABARI,))
    assert problem(await client.post(path, json={}, headers=engaged), 403, "not-the-organiser")
    assert problem(await client.post(path, json={}, headers=stranger), 404, "case-not-found")
    tier1 = await client.post(f"/v1/cases/{light}/plans", json={}, headers=lead)
    assert problem(tier1, 409, "plan-not-for-this-case")

    first = await client.post(path, json={"goals": GOALS}, headers=lead)
    assert first.status_code == 201, first.text
    plan = first.json()
    today = datetime.now(JST).date()
    assert (plan["version"], plan["status"], plan["goals"], plan["created_by"], plan["reason"]) == (
        1,
        "drafted",
        GOALS,
        LEAD,
        None,
    )
    # Pre-filled from the case: a role for each engaged agency (its type, to be rewritten), the lead as
    # 主担当, the municipality's default interval and first evaluation.
    assert plan["roles"] == {
        "hoken-07": "community_comprehensive_support_center",
        "nabari-jiritsu": "independence_support_agency",
    }
    assert plan["main_agency"] == LEAD
    assert plan["monitoring_interval_days"] == 20
    assert plan["next_evaluation"] == (today + timedelta(days=90)).isoformat()

    revision = {"main_agency": "nabari-jiritsu", "roles": {"nabari-jiritsu": "家計改善支援", "hoken-07": "見守り"}}
    assert problem(await client.post(path, json=revision, headers=lead), 422, "plan-reason-required")
    outsider = await client.post(
        path, json={**revision, "reason": "役割の見直し", "main_agency": "hoken-08"}, headers=lead
    )
    assert problem(outsider, 422, "not-engaged") and outsider.json()["agencies"] == ["hoken-08"]
    second = await client.post(path, json={**revision, "reason": "役割の見直し"}, headers=lead)
    assert second.status_code == 201, second.text
    revised = second.json()
    assert (revised["version"], revised["status"], revised["reason"], revised["main_agency"]) == (
        2,
        "drafted",
        "役割の見直し",
        "nabari-jiritsu",
    )
    assert revised["goals"] == GOALS and revised["plan_id"] == plan["plan_id"], "left out: taken from version 1"

    events = plan_events(conference, case_id)
    assert [(e.version, e.status, e.goals, e.main_agency, e.reason) for e in events] == [
        (1, "drafted", 2, LEAD, None),
        (2, "drafted", 2, "nabari-jiritsu", "役割の見直し"),
    ]
    # The goals may name people: they never leave conference.
    published_text = raw_events(conference.engine, case_id)
    assert all(goal not in published_text for goal in GOALS)


async def test_a_plan_is_read_only_by_those_with_a_part_in_the_case_each_read_on_the_ledger(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    referral_id = str(uuid.uuid4())
    with db.transaction(conference.engine) as session:
        apply_referral_requested(session, referral(case_id, "hoken-07", referral_id))
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    assert (await client.post(f"/v1/cases/{case_id}/plans", json={"goals": GOALS}, headers=lead)).status_code == 201

    path = f"/v1/cases/{case_id}/plans"
    engaged = bearer("hoken-07", Scope.coordinator, municipalities=(NABARI,))
    operator = bearer("operator", Scope.operator, municipalities=(NABARI,))
    for reader in (lead, engaged, operator):
        read = await client.get(path, headers=reader)
        assert read.status_code == 200, read.text
        assert [p["goals"] for p in read.json()] == [GOALS]
    one = await client.get(f"{path}/1", headers=engaged)
    assert one.status_code == 200 and one.json()["version"] == 1
    assert problem(await client.get(f"{path}/9", headers=lead), 404, "plan-not-found")

    # No part in the case, or the case in a municipality the credential does not serve: no such case,
    # word for word as for a case that does not exist.
    unknown = await client.get(f"/v1/cases/{uuid.uuid4()}/plans", headers=lead)
    stranger = bearer("hoken-08", Scope.coordinator, municipalities=(NABARI,))
    elsewhere = bearer("hoken-07", Scope.coordinator, municipalities=(NEIGHBOUR,))
    for outsider in (stranger, elsewhere):
        refused = await client.get(path, headers=outsider)
        assert problem(refused, 404, "case-not-found")
        assert set(refused.json()) == set(unknown.json())
        assert problem(await client.get(f"{path}/1", headers=outsider), 404, "case-not-found")

    reads = [r for r in conference.ledger() if r.channel == "plan" and r.case_id == case_id]
    released = {(r.recipient, r.basis, r.basis_ref) for r in reads if r.outcome == "released"}
    assert released == {
        (LEAD, "engagement", case_id),  # the lead holds no referral: the case itself
        ("hoken-07", "engagement", referral_id),
        ("operator", "operator", None),
    }
    assert all("goals" in r.fields for r in reads if r.outcome == "released")
    assert sorted(r.recipient for r in reads if r.outcome == "refused") == sorted(["hoken-07", "hoken-08"] * 2)

    # With a live 本人同意, the plan is read on it.
    consent_id = consent(conference, case_id)
    assert (await client.get(path, headers=engaged)).status_code == 200
    latest = [r for r in conference.ledger() if r.channel == "plan" and r.case_id == case_id][-1]
    assert (latest.recipient, latest.basis, latest.basis_ref) == ("hoken-07", "consent", consent_id)


async def test_the_support_decision_approves_the_plan_the_meeting_saw_and_supersedes_the_one_before(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    consent(conference, case_id)
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    path = f"/v1/cases/{case_id}/plans"
    assert (await client.post(path, json={"goals": GOALS}, headers=lead)).status_code == 201

    first = await approved_at_plan_meeting(conference, lead, case_id)
    assert first["plan_version"] == 1, "the held meeting froze the version it saw"
    assert first["decisions"][0]["plan_version"] == 1
    frozen = await client.get(f"/v1/meetings/{first['id']}", headers=lead)
    assert frozen.json()["plan_version"] == 1
    plan = (await client.get(f"{path}/1", headers=lead)).json()
    assert (plan["status"], plan["approved_at_meeting"]) == ("approved", first["id"])

    revised = await client.post(path, json={"reason": "就労支援を追加", "goals": [*GOALS, "就労"]}, headers=lead)
    assert revised.status_code == 201
    # A 支援決定 naming a version the case does not have, or one already superseded, approves nothing.
    created = await client.post("/v1/plan-meetings", json={"case_id": case_id}, headers=lead)
    meeting = f"/v1/meetings/{created.json()['id']}"
    assert (await client.post(f"{meeting}/attendance", json=ATTENDED, headers=lead)).status_code == 200
    decision = {"type": "support_decision", "lead_agency": LEAD, "next_review": "2027-06-01"}
    missing = await client.post(f"{meeting}/decisions", json={**decision, "plan_version": 7}, headers=lead)
    assert problem(missing, 404, "plan-not-found")
    second = await client.post(f"{meeting}/decisions", json=decision, headers=lead)
    assert second.status_code == 201, second.text
    assert second.json()["plan_version"] == 2 and second.json()["decisions"][0]["plan_version"] == 2
    again = await client.post(f"{meeting}/decisions", json={**decision, "plan_version": 1}, headers=lead)
    assert problem(again, 409, "plan-not-approved")

    versions = (await client.get(path, headers=lead)).json()
    assert [(p["version"], p["status"]) for p in versions] == [(1, "superseded"), (2, "approved")]
    events = plan_events(conference, case_id)
    assert [(e.version, e.status, e.approved_at_meeting) for e in events] == [
        (1, "drafted", None),
        (1, "approved", first["id"]),
        (2, "drafted", None),
        (1, "superseded", first["id"]),
        (2, "approved", created.json()["id"]),
    ]
    assert events[1].changed_by == LEAD
    with db.transaction(conference.engine) as session:
        decisions = [e.data for e in published(session, ConferenceDecisionRecorded) if e.data.case_id == case_id]
    assert [d.plan_version for d in decisions] == [1, 2]


def test_where_case_meetings_approve_plans_they_do_so_only_with_consent(engine: Engine, tmp_path: Path) -> None:
    """[LOCAL] conference.plans.approved_at: case_meeting — a municipality without the 事業; by default a case
    meeting's approved plan decision leaves the 支援プラン to the 支援決定."""
    for approved_at, expected in (("case_meeting", "approved"), ("plan_meeting", "drafted")):
        case_id = str(uuid.uuid4())
        confs = configs(tmp_path, plans={"approved_at": approved_at})
        config = confs[NABARI]
        with db.transaction(engine) as session:
            apply_routing_decided(session, decided_event(case_id, ["hoken-07"]), confs)
        with db.transaction(engine) as session:
            state = session.get_one(CaseState, case_id)
            draft(session, config, state, PlanCreate(goals=GOALS), by=LEAD)
            [meeting] = list_meetings(session, case_id=case_id)
            hold(session, meeting, config)
            body = DecisionCreate(plan_approved=True, lead_agency=LEAD, next_review=date(2027, 3, 1))
            without = record_decision(session, meeting, body, config)
            if approved_at == "case_meeting":
                assert without.plan_status == "drafted", "without 本人同意 the plan stays drafted"
            assert get_plan(session, case_id, 1).status == "drafted"
            given = ConsentGiven(
                case_id=case_id,
                consent_id=str(uuid.uuid4()),
                given_by="self",
                members=[0],
                share_with=[],
                given_at=datetime.now(UTC),
            )
            apply_consent(session, new_event(given, source="/t", subject=case_id, municipality_code=NABARI))
            withc = record_decision(session, meeting, body, config)
            plan = get_plan(session, case_id, 1)
            assert plan.status == expected, approved_at
            if expected == "approved":
                assert (withc.plan_version, plan.approved_at_meeting) == (1, meeting.id)


async def test_monitorings_and_evaluations_are_recorded_against_the_plan_in_force(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    consent(conference, case_id)
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    main = bearer("nabari-jiritsu", Scope.coordinator, municipalities=(NABARI,))
    engaged = bearer("hoken-07", Scope.coordinator, municipalities=(NABARI,))
    path = f"/v1/cases/{case_id}/plans"
    body = {"goals": GOALS, "main_agency": "nabari-jiritsu", "next_evaluation": "2099-01-05"}
    assert (await client.post(path, json=body, headers=lead)).status_code == 201
    note = {"kind": "monitoring", "note": "Aさんは週2回通院できている"}
    drafted = await client.post(f"{path}/1/monitorings", json=note, headers=main)
    assert problem(drafted, 409, "plan-not-approved"), "a draft is not yet in force"
    await approved_at_plan_meeting(conference, lead, case_id)

    monitored = await client.post(f"{path}/1/monitorings", json=note, headers=main)
    assert monitored.status_code == 201, monitored.text
    assert (monitored.json()["kind"], monitored.json()["on_time"], monitored.json()["recorded_by"]) == (
        "monitoring",
        True,
        "nabari-jiritsu",
    )
    evaluation = {"kind": "evaluation", "note": "通院は安定、家計は継続課題"}
    evaluated = await client.post(f"{path}/1/monitorings", json=evaluation, headers=engaged)
    assert evaluated.status_code == 201
    assert (evaluated.json()["on_time"], evaluated.json()["due_on"]) == (True, "2099-01-05")
    # An operator runs the service, it does not monitor households; a stranger hears of no case.
    operator = bearer("operator", Scope.operator, municipalities=(NABARI,))
    assert problem(await client.post(f"{path}/1/monitorings", json=note, headers=operator), 403, "not-on-the-plan")
    stranger = bearer("hoken-08", Scope.coordinator, municipalities=(NABARI,))
    assert problem(await client.post(f"{path}/1/monitorings", json=note, headers=stranger), 404, "case-not-found")
    assert problem(await client.post(f"{path}/4/monitorings", json=note, headers=main), 404, "plan-not-found")

    plan = (await client.get(f"{path}/1", headers=engaged)).json()
    assert [(m["kind"], m["note"]) for m in plan["monitorings"]] == [
        ("monitoring", note["note"]),
        ("evaluation", evaluation["note"]),
    ]
    with db.transaction(conference.engine) as session:
        recorded = [e.data for e in published(session, MonitoringRecorded) if e.data.case_id == case_id]
    assert [(e.kind, e.plan_version, e.on_time, e.recorded_by) for e in recorded] == [
        ("monitoring", 1, True, "nabari-jiritsu"),
        ("evaluation", 1, True, "hoken-07"),
    ]
    assert recorded[1].due_at == date(2099, 1, 5)
    text = raw_events(conference.engine, case_id)
    assert note["note"] not in text and evaluation["note"] not in text, "notes stay in conference"


def test_on_time_is_measured_in_business_days_from_the_approval_or_the_last_monitoring(
    engine: Engine, tmp_path: Path
) -> None:
    """2026-11-03 is 文化の日: five business days after Monday 2 November end on Tuesday 10 November."""
    confs = configs(tmp_path)
    config = confs[NABARI]
    case_id = str(uuid.uuid4())

    def jst(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=JST)

    with db.transaction(engine) as session:
        apply_routing_decided(session, decided_event(case_id, ["hoken-07"]), confs)
    with db.transaction(engine) as session:
        state = session.get_one(CaseState, case_id)
        body = PlanCreate(goals=GOALS, monitoring_interval_days=5, next_evaluation=date(2026, 11, 30))
        plan = draft(session, config, state, body, by=LEAD, now=jst(date(2026, 11, 2), 9))
        approve(session, plan, meeting_id="m", decision_id=None, by=LEAD, now=jst(date(2026, 11, 2), 10))

        def monitor(kind: str, at: datetime) -> tuple[bool, datetime | None]:
            row = record_monitoring(
                session,
                state,
                plan,
                MonitoringCreate(kind=kind, note="n"),
                by="hoken-07",
                now=at,
            )
            return row.on_time, row.due_at

        assert monitor("monitoring", jst(date(2026, 11, 10), 17)) == (True, jst(date(2026, 11, 10), 18))
        # The clock restarts at that monitoring: due Tuesday 17 November; Wednesday morning is late.
        assert monitor("monitoring", jst(date(2026, 11, 18), 9)) == (False, jst(date(2026, 11, 17), 18))
        # An evaluation is on time on (or before) the plan's next evaluation day, in Japan.
        assert monitor("evaluation", jst(date(2026, 11, 30), 23, 30))[0] is True
        assert monitor("evaluation", jst(date(2026, 12, 1), 0, 30))[0] is False


async def test_overdue_monitorings_are_counted_on_the_agenda_without_naming_a_case(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    consent(conference, case_id)
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    assert (await client.post(f"/v1/cases/{case_id}/plans", json={"goals": GOALS}, headers=lead)).status_code == 201
    meeting = await approved_at_plan_meeting(conference, lead, case_id)
    with db.transaction(conference.engine) as session:
        plan_id = session.get_one(SupportPlan, (case_id, 1)).plan_id
    convened = await client.post("/v1/promotion-meetings", json={"municipality_code": NABARI}, headers=lead)
    promotion = convened.json()["id"]

    def due(stage: str, due_at: datetime) -> None:
        data = MonitoringDue(
            case_id=case_id,
            plan_id=plan_id,
            plan_version=1,
            stage=stage,
            main_agency=LEAD,
            lead=LEAD,
            due_at=due_at,
        )
        with db.transaction(conference.engine) as session:
            apply_monitoring_due(session, new_event(data, source="/t", subject=case_id, municipality_code=NABARI))

    async def overdue_count() -> int:
        response = await client.get(f"/v1/promotion-meetings/{promotion}/agenda", headers=lead)
        assert response.status_code == 200, response.text
        assert case_id not in response.text
        [line] = [
            line for line in response.json()["items"]["ウ"]["lines"] if line["detail"]["item"] == "overdue_monitorings"
        ]
        assert line["source_events"] == []
        plans: int = line["detail"]["plans"]
        assert f"{plans}件" in line["text"]
        return plans

    first_due = datetime.now(UTC) - timedelta(days=1)
    due("reminder", first_due)
    assert await overdue_count() == 0, "a reminder is the 主担当's, not the agenda's"
    due("overdue", first_due)
    due("overdue", first_due)  # the timer fired again for the same due moment
    assert await overdue_count() == 1
    note = {"kind": "monitoring", "note": "訪問した"}
    monitored = await client.post(f"/v1/cases/{case_id}/plans/1/monitorings", json=note, headers=lead)
    assert monitored.status_code == 201
    assert await overdue_count() == 0, "a monitoring recorded settles it"
    # The timer had not heard of that monitoring when it fired for the due it was measured against.
    due("overdue", datetime.fromisoformat(monitored.json()["due_at"]))
    assert await overdue_count() == 0

    due("overdue", datetime.now(UTC) + timedelta(days=40))
    assert await overdue_count() == 1
    # Ended with no 見守り, the case is no longer followed: its plan's monitoring no longer counts.
    closure = {"type": "closure", "closure_reason": "goals_met", "lead_agency": LEAD}
    closed = await client.post(f"/v1/meetings/{meeting['id']}/decisions", json=closure, headers=lead)
    assert closed.status_code == 201, closed.text
    assert await overdue_count() == 0
