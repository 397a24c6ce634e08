"""Records that do not change: a held meeting keeps its agenda, attendance (sectors from the directory) and
directory version; decisions only on held meetings, corrected by new linked records; reviews fall due on
the `next_review` a decision set."""

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.conference.agenda import build_agenda, frozen_agenda
from services.conference.app import create
from services.conference.case_meetings import apply_referral_requested, apply_routing_decided
from services.conference.config import MunicipalityConference, load_configs
from services.conference.errors import DecisionNotFound, MeetingNotHeld
from services.conference.meetings import cancel, get_meeting, list_meetings, record_attendance, record_decision
from services.conference.models import AttendanceCreate, CaseDecision, DecisionCreate, Meeting
from services.conference.promotion_meetings import schedule_promotion_meeting
from shared import db
from shared.auth import Scope
from shared.events import AttendanceRecord, ConferenceDecisionRecorded, ConferenceHeld, DisclosureRecorded
from shared.settings import Settings
from tests.conference.test_meetings import configs, decided_event, engine, published, referral

__all__ = ["engine"]  # the fixture, shared with test_meetings

CODE, LEAD = "242080", "nabari-houkatsu"


def present(participant: str, sector: str = "welfare", kind: str = "agency") -> AttendanceRecord:
    """An attendee as the organiser posted them."""
    return AttendanceRecord(participant=participant, kind=kind, sector=sector, attended=True)


def held(
    session: Session,
    meeting: Meeting,
    config: MunicipalityConference,
    *,
    agenda: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Meeting:
    """The meeting was held, the lead present."""
    body = AttendanceCreate(attendance=[present(LEAD)])
    return record_attendance(session, meeting, body, config, agenda=agenda, now=now)


def decision(
    case_id: str | None = None, *, review: date = date(2027, 3, 1), corrects: int | None = None
) -> DecisionCreate:
    return DecisionCreate(case_id=case_id, plan_approved=False, lead_agency=LEAD, next_review=review, corrects=corrects)


def test_a_held_agenda_read_a_week_later_is_the_one_frozen_when_it_was_held(engine: Engine, tmp_path: Path) -> None:
    confs = configs(tmp_path)
    config = confs[CODE]
    held_at = datetime.now(UTC)
    with db.transaction(engine) as session:
        apply_routing_decided(session, decided_event(str(uuid.uuid4()), ["hoken-01"]), confs)
        meeting = schedule_promotion_meeting(session, config, not_before=None)
        agenda = build_agenda(session, config, meeting, snapshot=None, snapshot_error="offline", now=held_at)
        held(session, meeting, config, agenda=agenda, now=held_at)
        meeting_id = meeting.id

    # After holding: a new agency joins, a new difficult case with a resource gap.
    week_later = held_at + timedelta(days=7)
    with db.transaction(engine) as session:
        event = decided_event(str(uuid.uuid4()), ["hoken-02", "mie-saposute"], gaps=("shelter",), at=week_later)
        apply_routing_decided(session, event, confs)

    with db.transaction(engine) as session:
        meeting = get_meeting(session, meeting_id)
        rebuilt = build_agenda(session, config, meeting, snapshot=None, snapshot_error="offline", now=week_later)
        assert rebuilt != agenda, "what has happened since would change a rebuilt agenda"
        assert frozen_agenda(meeting) == agenda
        assert (meeting.held_at, meeting.directory_version) == (held_at, config.directory.version)


def test_decisions_only_on_held_meetings_and_a_correction_is_a_new_linked_record(
    engine: Engine, tmp_path: Path
) -> None:
    confs = configs(tmp_path)
    config = confs[CODE]
    cancelled_case, never_held_case, held_case = (str(uuid.uuid4()) for _ in range(3))
    with db.transaction(engine) as session:
        for case_id in (cancelled_case, never_held_case, held_case):
            apply_routing_decided(session, decided_event(case_id, ["hoken-03"]), confs)
        [cancelled] = list_meetings(session, case_id=cancelled_case)
        cancel(session, cancelled, reason="household moved away")
        [never_held] = list_meetings(session, case_id=never_held_case)
        for meeting in (cancelled, never_held):
            with pytest.raises(MeetingNotHeld):
                record_decision(session, meeting, decision(), config)

        [meeting] = list_meetings(session, case_id=held_case)
        held(session, meeting, config)
        first = record_decision(session, meeting, decision(), config)
        assert first.id is not None
        correction = record_decision(session, meeting, decision(review=date(2027, 1, 15), corrects=first.id), config)
        with pytest.raises(DecisionNotFound):
            other = Meeting(
                id=str(uuid.uuid4()), kind="promotion_meeting", municipality_code=CODE, title="t", participants=[]
            )
            session.add(other)
            held(session, other, config)
            record_decision(session, other, decision(held_case, corrects=first.id), config)

    with db.transaction(engine) as session:
        original = session.get(CaseDecision, first.id)
        assert original is not None and original.next_review == date(2027, 3, 1), "the corrected one stays as it was"
        assert (correction.corrects, correction.case_id, correction.next_review) == (
            first.id,
            held_case,
            date(2027, 1, 15),
        )
        # On Kafka the correction names the corrected decision by its event id, which every consumer knows.
        recorded = [e.data for e in published(session, ConferenceDecisionRecorded)]
        assert [d.corrects for d in recorded] == [None, original.event_id]


def test_overdue_reviews_fall_due_on_the_next_review_a_decision_set(engine: Engine, tmp_path: Path) -> None:
    confs = configs(tmp_path, promotion_meeting={"review_after_days": 60})
    config = confs[CODE]
    now = datetime.now(UTC)
    due, not_due = str(uuid.uuid4()), str(uuid.uuid4())
    with db.transaction(engine) as session:
        for case_id, tier in ((due, 2), (not_due, 3)):
            event = decided_event(case_id, ["hoken-04"], tier, at=now - timedelta(days=100))
            apply_routing_decided(session, event, confs)
            [meeting] = list_meetings(session, case_id=case_id)
            held(session, meeting, config)
        # Reviewed today, but the review it set was yesterday: due, though 60 days have not passed.
        [meeting] = list_meetings(session, case_id=due)
        record_decision(session, meeting, decision(review=(now - timedelta(days=1)).date()), config)
        # Reviewed 90 days ago with the next review a month ahead: not due, though 60 days have passed.
        [meeting] = list_meetings(session, case_id=not_due)
        later = record_decision(session, meeting, decision(review=(now + timedelta(days=30)).date()), config)
        later.recorded_at = now - timedelta(days=90)
        session.add(later)
        session.flush()
        promotion = schedule_promotion_meeting(session, config, not_before=None)
        agenda = build_agenda(session, config, promotion, snapshot=None, snapshot_error="offline", now=now)
    [overdue] = [
        line["detail"] for line in agenda["items"]["ウ"]["lines"] if line["detail"]["item"] == "overdue_reviews"
    ]
    assert (overdue["cases"], overdue["by_tier"]) == (1, {"tier2": 1}), "the tier-2 case is due, the tier-3 not"


@pytest.fixture
async def client(settings: Settings, engine: Engine, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    configs(tmp_path)
    own = settings.model_copy(update={"directory_files": [tmp_path / "directory.yaml"], "relay_enabled": False})
    app = create(own)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://c") as c:
        yield c


async def test_the_record_shows_the_directorys_sector_and_refuses_decisions_on_a_cancelled_meeting(
    client: httpx.AsyncClient, engine: Engine, tmp_path: Path, bearer: Callable[..., dict[str, str]]
) -> None:
    confs = load_configs([tmp_path / "directory.yaml"])
    case_id, cancelled_case = str(uuid.uuid4()), str(uuid.uuid4())
    with db.transaction(engine) as session:
        apply_routing_decided(session, decided_event(case_id, ["hellowork-nabari"]), confs)
        apply_routing_decided(session, decided_event(cancelled_case, ["hoken-05"]), confs)
        [meeting] = list_meetings(session, case_id=case_id)
        [cancelled] = list_meetings(session, case_id=cancelled_case)
    lead = bearer(LEAD, Scope.coordinator)
    posted = [
        present(LEAD, sector="non_welfare"),  # the organiser's slip: the directory says welfare
        present("hellowork-nabari", sector="welfare"),
        present("名張市 住宅政策室", sector="non_welfare", kind="municipal_division"),
    ]
    body = {"attendance": [p.model_dump() for p in posted]}
    response = await client.post(f"/v1/meetings/{meeting.id}/attendance", json=body, headers=lead)
    assert response.status_code == 200, response.text

    record = (await client.get(f"/v1/meetings/{meeting.id}", headers=lead)).json()
    sectors = {a["participant"]: a["sector"] for a in record["attendance"]}
    assert sectors == {LEAD: "welfare", "hellowork-nabari": "non_welfare", "名張市 住宅政策室": "non_welfare"}
    assert record["directory_version"] == confs[CODE].directory.version and record["held_at"]
    with db.transaction(engine) as session:
        [event] = [e.data for e in published(session, ConferenceHeld) if e.data.meeting_id == meeting.id]
    assert {a.participant: a.sector for a in event.attendance} == sectors, "the indicators count the directory's"

    decision_body = {"plan_approved": True, "lead_agency": LEAD, "next_review": "2027-03-01"}
    await client.post(f"/v1/meetings/{cancelled.id}/cancel", json={"reason": "moved away"}, headers=lead)
    refused = await client.post(f"/v1/meetings/{cancelled.id}/decisions", json=decision_body, headers=lead)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/meeting-not-held")
    accepted = await client.post(f"/v1/meetings/{meeting.id}/decisions", json=decision_body, headers=lead)
    assert accepted.status_code == 201, accepted.text
    [recorded] = accepted.json()["decisions"]
    assert recorded["corrects"] is None and recorded["next_review"] == "2027-03-01"


async def test_a_held_promotion_meetings_agenda_is_read_back_as_frozen_over_http(
    client: httpx.AsyncClient, engine: Engine, tmp_path: Path, bearer: Callable[..., dict[str, str]]
) -> None:
    confs = load_configs([tmp_path / "directory.yaml"])
    lead = bearer(LEAD, Scope.coordinator)
    with db.transaction(engine) as session:
        apply_routing_decided(session, decided_event(str(uuid.uuid4()), ["hoken-06"]), confs)
    convened = await client.post("/v1/promotion-meetings", json={"municipality_code": CODE}, headers=lead)
    assert convened.status_code == 201, convened.text
    meeting_id = convened.json()["id"]
    body = {"attendance": [present(LEAD).model_dump()]}
    assert (await client.post(f"/v1/meetings/{meeting_id}/attendance", json=body, headers=lead)).status_code == 200
    frozen = (await client.get(f"/v1/promotion-meetings/{meeting_id}/agenda", headers=lead)).json()
    assert frozen["items"]["ア"]["lines"], "built when it was held"

    with db.transaction(engine) as session:
        event = decided_event(str(uuid.uuid4()), ["hoken-07", "mie-saposute"], gaps=("shelter",))
        apply_routing_decided(session, event, confs)
    again = await client.get(f"/v1/promotion-meetings/{meeting_id}/agenda", headers=lead)
    assert again.json() == frozen
    record = (await client.get(f"/v1/meetings/{meeting_id}", headers=lead)).json()
    assert record["agenda"] == frozen


async def test_a_promotion_meetings_decision_goes_only_to_those_with_a_part_in_its_case(
    client: httpx.AsyncClient, engine: Engine, tmp_path: Path, bearer: Callable[..., dict[str, str]]
) -> None:
    confs = load_configs([tmp_path / "directory.yaml"])
    decided_case, other_case, referral_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    with db.transaction(engine) as session:
        apply_routing_decided(session, decided_event(decided_case, ["hoken-06"]), confs)
        apply_referral_requested(session, referral(decided_case, "hoken-06", referral_id=referral_id))
        apply_routing_decided(session, decided_event(other_case, ["hoken-07"]), confs)
    lead = bearer(LEAD, Scope.coordinator)
    meeting_id = (await client.post("/v1/promotion-meetings", json={"municipality_code": CODE}, headers=lead)).json()[
        "id"
    ]
    body = {"attendance": [present(LEAD).model_dump()]}
    assert (await client.post(f"/v1/meetings/{meeting_id}/attendance", json=body, headers=lead)).status_code == 200
    decision_body = {"case_id": decided_case, "plan_approved": True, "lead_agency": LEAD, "next_review": "2027-03-01"}
    assert (
        await client.post(f"/v1/meetings/{meeting_id}/decisions", json=decision_body, headers=lead)
    ).status_code == 201
    with db.transaction(engine) as session:
        before = len(published(session, DisclosureRecorded))

    # The whole network reads the 推進会議's record; the decision about a case only those with a part in it.
    engaged = await client.get(f"/v1/meetings/{meeting_id}", headers=bearer("hoken-06", Scope.coordinator))
    outsider = await client.get(f"/v1/meetings/{meeting_id}", headers=bearer("hoken-07", Scope.coordinator))
    assert engaged.status_code == outsider.status_code == 200, (engaged.text, outsider.text)
    assert [d["case_id"] for d in engaged.json()["decisions"]] == [decided_case]
    assert outsider.json()["decisions"] == [] and decided_case not in outsider.text
    with db.transaction(engine) as session:
        rows = [e.data for e in published(session, DisclosureRecorded)][before:]
    assert [(r.recipient, r.case_id, r.channel, r.basis, r.basis_ref) for r in rows] == [
        ("hoken-06", decided_case, "meeting_record", "engagement", referral_id)
    ]
