"""Meeting kinds under the law as it stands: a 支援会議 (Art. 106-6) about a household without consent,
among current roster members only, every release on the ledger on the roster's basis; a 重層的支援会議
only with 本人同意, recording the 支援決定 and the 終結 with their events."""

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from services.conference.case_meetings import apply_consent, apply_consultation_received
from services.conference.models import ConferenceOutbox, Meeting
from services.conference.roster import local_today
from services.conference.support_meetings import apply_roster_changed
from shared import db
from shared.auth import Scope
from shared.consultation import ConsultationSummary
from shared.events import (
    ConferenceDecisionRecorded,
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    MeetingInvitation,
    SupportMeetingRosterChanged,
    new_event,
)
from tests.conference.test_meetings import published
from tests.conference.test_need_to_know import (
    LEAD,
    NABARI,
    Conference,
    conference,
    engine,
    not_found,
    routed,
    two_municipalities,
)

__all__ = ["conference", "engine", "two_municipalities"]  # fixtures, shared with test_need_to_know


def on_roster(conference: Conference, agency_id: str, *, until: date | None = None) -> str:
    """Intake's roster event for the agency (a member since last month), applied; its roster reference."""
    since = local_today() - timedelta(days=30)
    ref = f"support_meeting:{NABARI}:{agency_id}:{since.isoformat()}"
    data = SupportMeetingRosterChanged(
        agency_id=agency_id,
        member_from=since,
        member_until=until,
        roster_ref=ref,
        changed_by=LEAD,
        changed_at=datetime.now(UTC),
    )
    with db.transaction(conference.engine) as session:
        apply_roster_changed(session, new_event(data, source="/t", subject=NABARI, municipality_code=NABARI))
    return ref


def received(conference: Conference, case_id: str, *, contact: str) -> None:
    """The case's consultation, as intake publishes it (a neighbour's concern: nobody has met the person)."""
    summary = ConsultationSummary.model_validate(
        {
            "area": "chiiki-07",
            "pathway": "family_or_community",
            "contact": contact,
            "household": [{"relation": "self", "issues": ["hikikomori"]}, {"relation": "parent", "issues": []}],
        }
    )
    data = ConsultationReceived(
        case_id=case_id,
        consultation_id=str(uuid.uuid4()),
        submitted_by="hoken-07",
        received_at=datetime.now(UTC),
        consultation=summary,
    )
    with db.transaction(conference.engine) as session:
        apply_consultation_received(session, new_event(data, source="/t", subject=case_id, municipality_code=NABARI))


def consent(conference: Conference, case_id: str, *, revoke: str | None = None) -> str:
    consent_id = revoke or str(uuid.uuid4())
    now = datetime.now(UTC)
    data: Any = (
        ConsentRevoked(case_id=case_id, consent_id=consent_id, revoked_at=now, reason="person_request")
        if revoke
        else ConsentGiven(
            case_id=case_id, consent_id=consent_id, given_by="self", members=[0], share_with=[], given_at=now
        )
    )
    with db.transaction(conference.engine) as session:
        apply_consent(session, new_event(data, source="/t", subject=case_id, municipality_code=NABARI))
    return consent_id


def invitations(conference: Conference, meeting_id: str) -> list[MeetingInvitation]:
    with db.transaction(conference.engine) as session:
        return [e.data for e in published(session, MeetingInvitation) if e.data.meeting_id == meeting_id]


def problem(response: Any, status: int, code: str) -> bool:
    return bool(response.status_code == status and response.json()["type"].endswith(f"/{code}"))


async def test_a_support_meeting_without_consent_is_among_current_roster_members_only(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    """Done-when 1: a household without consent, its person not yet reached; the 支援会議 invites only
    current roster members, each invitation and record read is on the ledger on the member's roster
    entry, and an agency off the roster (even one engaged on the case, even an operator) gets nothing."""
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-fukushi"]))
    received(conference, case_id, contact="not_yet_reached")
    refs = {agency: on_roster(conference, agency) for agency in (LEAD, "hoken-07", "nabari-shakyo")}
    on_roster(conference, "nabari-jiritsu", until=local_today() - timedelta(days=1))  # a former member
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    engaged_non_member = bearer("nabari-fukushi", Scope.coordinator, municipalities=(NABARI,))
    operator = bearer("operator", Scope.operator, Scope.coordinator, municipalities=(NABARI,))

    for outsider in ("nabari-fukushi", "nabari-jiritsu", "hoken-08"):
        refused = await client.post(
            "/v1/support-meetings", json={"case_id": case_id, "invitees": ["hoken-07", outsider]}, headers=lead
        )
        assert problem(refused, 422, "not-on-roster"), refused.text
        assert refused.json()["agencies"] == [outsider]
    # Only the lead (or an operator) convenes; an agency with no part in the case hears of no case.
    stranger = bearer("hoken-08", Scope.coordinator, municipalities=(NABARI,))
    body = {"case_id": case_id, "invitees": ["hoken-07", "nabari-shakyo"]}
    assert problem(await client.post("/v1/support-meetings", json=body, headers=stranger), 404, "case-not-found")
    assert problem(
        await client.post("/v1/support-meetings", json=body, headers=engaged_non_member), 403, "not-the-organiser"
    )

    created = await client.post("/v1/support-meetings", json=body, headers=lead)
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert meeting["kind"] == "support_meeting"
    assert meeting["participants"] == sorted([LEAD, "hoken-07", "nabari-shakyo"])
    assert "第106条の6" in meeting["legal_basis"] and "本人未接触" in meeting["personal_details"]

    sent = invitations(conference, meeting["id"])
    assert sorted(i.agency_id for i in sent) == meeting["participants"]
    assert {i.case_id for i in sent} == {case_id}
    released = [r for r in conference.ledger() if r.channel == "meeting_invitation" and r.case_id == case_id]
    # The case meeting of the tier-2 case invited on engagement; the 支援会議 on each member's roster entry.
    support = {r.recipient: r for r in released if r.basis == "support_meeting"}
    assert {agency: r.basis_ref for agency, r in support.items()} == refs
    assert "nabari-fukushi" not in support

    path = f"/v1/meetings/{meeting['id']}"
    member = bearer("nabari-shakyo", Scope.coordinator, municipalities=(NABARI,))
    assert (await client.get(path, headers=member)).status_code == 200
    for barred in (engaged_non_member, operator, stranger):
        assert not_found(await client.get(path, headers=barred), meeting["id"])
        listed = (await client.get(f"/v1/meetings?case_id={case_id}", headers=barred)).json()
        assert meeting["id"] not in {m["id"] for m in listed}
    reads = [r for r in conference.ledger() if r.channel == "meeting_record" and r.case_id == case_id]
    assert [(r.basis, r.basis_ref) for r in reads if r.recipient == "nabari-shakyo"] == [
        ("support_meeting", refs["nabari-shakyo"])
    ]
    assert {r.recipient for r in reads if r.outcome == "refused"} >= {"nabari-fukushi", "operator", "hoken-08"}

    # A member whose membership ends is withdrawn; the notice no longer names the case, and it reads nothing.
    on_roster(conference, "nabari-shakyo", until=local_today() - timedelta(days=1))
    withdrawn = [i for i in invitations(conference, meeting["id"]) if i.status == "withdrawn"]
    assert [(i.agency_id, i.case_id) for i in withdrawn] == [("nabari-shakyo", None)]
    assert not_found(await client.get(path, headers=member), meeting["id"])
    with db.transaction(conference.engine) as session:
        stored = session.get(Meeting, meeting["id"])
        assert stored is not None and "nabari-shakyo" not in stored.participants

    # Held, it drafts the direction of support; a 支援決定 belongs to a 重層的支援会議.
    attendance = {"attendance": [{"participant": LEAD, "kind": "agency", "sector": "welfare", "attended": True}]}
    assert (await client.post(f"{path}/attendance", json=attendance, headers=lead)).status_code == 200
    plan = {"plan_approved": True, "lead_agency": LEAD, "next_review": "2027-03-01"}
    decided = await client.post(f"{path}/decisions", json=plan, headers=lead)
    assert decided.status_code == 201, decided.text
    assert decided.json()["decisions"][0]["plan_status"] == "drafted"
    support_decision = await client.post(f"{path}/decisions", json={**plan, "type": "support_decision"}, headers=lead)
    assert problem(support_decision, 422, "decision-not-of-this-meeting")


async def test_a_plan_meeting_records_the_support_decision_and_the_closure(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    """Done-when 2: a 重層的支援会議 only with 本人同意; it records a 支援決定 (with the consent and plan version
    it rests on) and a 終結 (reason, 主担当, 見守り), each with its event; a correction is a linked record."""
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07", "nabari-jiritsu"]))
    client = conference.client
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    body = {"case_id": case_id}
    assert problem(await client.post("/v1/plan-meetings", json=body, headers=lead), 409, "consent-required")

    consent_id = consent(conference, case_id)
    created = await client.post("/v1/plan-meetings", json=body, headers=lead)
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert meeting["kind"] == "plan_meeting"
    assert meeting["participants"] == sorted([LEAD, "hoken-07", "nabari-jiritsu"])
    released = [r for r in conference.ledger() if r.channel == "meeting_invitation" and r.basis == "consent"]
    assert {(r.recipient, r.basis_ref) for r in released} == {(a, consent_id) for a in meeting["participants"]}

    path = f"/v1/meetings/{meeting['id']}"
    decision = {"type": "support_decision", "lead_agency": "nabari-jiritsu", "next_review": "2027-02-01"}
    assert problem(await client.post(f"{path}/decisions", json=decision, headers=lead), 409, "meeting-not-held")
    attendance = {"attendance": [{"participant": LEAD, "kind": "agency", "sector": "welfare", "attended": True}]}
    assert (await client.post(f"{path}/attendance", json=attendance, headers=lead)).status_code == 200

    plan_only = {"plan_approved": True, "lead_agency": LEAD, "next_review": "2027-02-01"}
    assert problem(
        await client.post(f"{path}/decisions", json=plan_only, headers=lead), 422, "decision-not-of-this-meeting"
    )
    no_review = {k: v for k, v in decision.items() if k != "next_review"}
    assert problem(await client.post(f"{path}/decisions", json=no_review, headers=lead), 422, "decision-incomplete")
    # The 支援決定 approves a 支援プラン version the case has (test_plans.py follows the plan itself).
    missing = await client.post(f"{path}/decisions", json={**decision, "plan_version": 1}, headers=lead)
    assert problem(missing, 404, "plan-not-found")
    drafted = await client.post(f"/v1/cases/{case_id}/plans", json={"goals": ["生活の再建"]}, headers=lead)
    assert drafted.status_code == 201, drafted.text
    approved = await client.post(
        f"{path}/decisions", json={**decision, "plan_version": 1, "roles": {"hoken-07": "見守り"}}, headers=lead
    )
    assert approved.status_code == 201, approved.text
    [support] = approved.json()["decisions"]
    assert (support["decision_type"], support["plan_status"], support["consent_id"], support["plan_version"]) == (
        "support_decision",
        "approved",
        consent_id,
        1,
    )

    closure = {"type": "closure", "lead_agency": "hoken-07", "watch": True}
    assert problem(await client.post(f"{path}/decisions", json=closure, headers=lead), 422, "decision-incomplete")
    closure["closure_reason"] = "goals_met"
    assert problem(await client.post(f"{path}/decisions", json=closure, headers=lead), 422, "decision-incomplete")
    closure["next_review"] = "2027-06-01"  # the 見守り check-in
    ended = await client.post(f"{path}/decisions", json=closure, headers=lead)
    assert ended.status_code == 201, ended.text
    closed = ended.json()["decisions"][-1]
    assert (closed["decision_type"], closed["closure_reason"], closed["watch"], closed["lead_agency"]) == (
        "closure",
        "goals_met",
        True,
        "hoken-07",
    )
    # A correction is of the same type, and linked; the corrected record stays.
    wrong_type = {**closure, "corrects": support["id"]}
    assert problem(await client.post(f"{path}/decisions", json=wrong_type, headers=lead), 422, "decision-incomplete")
    corrected = await client.post(
        f"{path}/decisions", json={**closure, "closure_reason": "moved_away", "corrects": closed["id"]}, headers=lead
    )
    assert corrected.status_code == 201
    assert [d["closure_reason"] for d in corrected.json()["decisions"]] == [None, "goals_met", "moved_away"]

    with db.transaction(conference.engine) as session:
        events = [e for e in published(session, ConferenceDecisionRecorded) if e.data.case_id == case_id]
    assert [(e.data.decision_type, e.data.meeting_kind, e.data.closure_reason) for e in events] == [
        ("support_decision", "plan_meeting", None),
        ("closure", "plan_meeting", "goals_met"),
        ("closure", "plan_meeting", "moved_away"),
    ]
    assert events[0].data.consent_id == consent_id and events[0].data.plan_version == 1
    assert events[2].data.corrects == events[1].id and events[1].data.watch


async def test_a_plan_meeting_to_come_is_cancelled_when_the_last_consent_is_revoked(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07"]))
    consent_id = consent(conference, case_id)
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    created = await conference.client.post("/v1/plan-meetings", json={"case_id": case_id}, headers=lead)
    assert created.status_code == 201
    consent(conference, case_id, revoke=consent_id)
    with db.transaction(conference.engine) as session:
        stored = session.get(Meeting, created.json()["id"])
        assert stored is not None and stored.status == "cancelled"
        assert stored.status_reason is not None and "本人同意" in stored.status_reason
        # The case meeting (engagement basis) goes on.
        kinds = session.exec(
            select(Meeting.kind).where(Meeting.case_id == case_id, col(Meeting.status) == "scheduled")
        ).all()
        assert list(kinds) == ["case_meeting"]
        assert session.exec(select(ConferenceOutbox)).first() is not None


async def test_the_meeting_kinds_say_their_basis(conference: Conference, bearer: Callable[..., dict[str, str]]) -> None:
    kinds = await conference.client.get("/v1/meeting-kinds", headers=bearer("hoken-07", Scope.coordinator))
    assert kinds.status_code == 200
    by_kind = {k["kind"]: k for k in kinds.json()}
    assert set(by_kind) == {"case_meeting", "support_meeting", "plan_meeting", "promotion_meeting"}
    assert by_kind["support_meeting"]["disclosure_basis"] == "support_meeting"
    assert by_kind["plan_meeting"]["decisions"] == ["closure", "support_decision"]
    assert by_kind["plan_meeting"]["needs_consent"] is True
