"""Conference over HTTP within need-to-know: a case meeting is seen only by its agencies and the case's lead,
each credential only in the municipalities it serves (404 otherwise, as for a meeting that does not exist);
the 推進会議 agenda names no case; every invitation to and record read of a case meeting is on the
disclosure ledger with its basis."""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from services.cli import upgrade_databases
from services.conference.app import create
from services.conference.case_meetings import apply_referral_requested, apply_referral_status, apply_routing_decided
from services.conference.config import MunicipalityConference, load_configs
from services.conference.meetings import list_meetings, record_attendance, record_decision
from services.conference.models import AttendanceCreate, DecisionCreate
from shared import db
from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.events import AttendanceRecord, DisclosureRecorded, MeetingInvitation, new_event
from shared.settings import Settings
from tests.conference.test_meetings import decided, published, referral, status_changed

NABARI, NEIGHBOUR = "242080", "242081"
LEAD = "nabari-houkatsu"


@dataclass
class Conference:
    """The conference app in-process (its relay off, so the outbox keeps what it staged), its database and
    its configuration of two municipalities."""

    client: httpx.AsyncClient
    engine: Engine
    configs: dict[str, MunicipalityConference]

    def route(self, event: Any) -> None:
        with db.transaction(self.engine) as session:
            apply_routing_decided(session, event, self.configs)

    def ledger(self) -> list[DisclosureRecorded]:
        with db.transaction(self.engine) as session:
            return [event.data for event in published(session, DisclosureRecorded)]


@pytest.fixture
def two_municipalities(tmp_path: Path) -> list[Path]:
    """名張市 and a neighbour served by the same deployment, with the same directory under another code."""
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    # No 推進会議 series: a network member would see it among its meetings, and these tests count them.
    data["conference"] = {"promotion_meeting": {"cadence": "on_demand"}}
    paths = []
    for code, name in ((NABARI, "名張市"), (NEIGHBOUR, "隣町")):
        data["municipality"]["code"], data["municipality"]["name"] = code, name
        path = tmp_path / f"directory-{code}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    upgrade_databases(settings, ["conference"])
    engine = db.make_engine(settings, "conference")
    yield engine
    engine.dispose()


@pytest.fixture
async def conference(settings: Settings, engine: Engine, two_municipalities: list[Path]) -> AsyncIterator[Conference]:
    own = settings.model_copy(update={"directory_files": two_municipalities, "relay_enabled": False})
    app = create(own)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        yield Conference(client, engine, load_configs(two_municipalities))


def routed(case_id: str, agencies: list[str], code: str = NABARI, **more: Any) -> Any:
    return new_event(decided(case_id, agencies, **more), source="/t", subject=case_id, municipality_code=code)


def not_found(response: httpx.Response, meeting_id: str) -> bool:
    """The 404 of a meeting that does not exist: the same document whether or not it exists."""
    body = response.json()
    return (
        response.status_code == 404
        and body["type"].endswith("/meeting-not-found")
        and body["detail"] == f"no meeting {meeting_id}"
    )


async def test_the_agenda_of_a_municipality_with_a_confidential_tier3_case_names_no_case(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    """A DV household escalated to tier 3 (prefecture support, a shelter missing) and a tier-2 case: the
    agenda counts them and names neither, nor any event of theirs."""
    now = datetime.now(UTC)
    dv, other = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        routed(dv, ["hoken-07"], tier=1, patterns=(), at=now - timedelta(days=3)),
        routed(
            dv,
            ["nabari-fukushi"],
            tier=3,
            sequence=2,
            patterns=("prefecture_category",),
            gaps=("shelter",),
            at=now - timedelta(days=2),
        ),
        routed(other, ["hoken-08"], tier=2, at=now - timedelta(days=1)),
    ]
    for event in events:
        conference.route(event)
    with db.transaction(conference.engine) as session:
        [meeting] = list_meetings(session, case_id=other)
        present = AttendanceRecord(participant=LEAD, kind="agency", sector="welfare", attended=True)
        record_attendance(session, meeting, AttendanceCreate(attendance=[present]), conference.configs[NABARI])
        body = DecisionCreate(plan_approved=False, lead_agency=LEAD, next_review=date(2027, 3, 1))
        drafted = record_decision(session, meeting, body, conference.configs[NABARI])

    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    convened = await conference.client.post("/v1/promotion-meetings", json={"municipality_code": NABARI}, headers=lead)
    assert convened.status_code == 201, convened.text
    promotion = convened.json()["id"]
    response = await conference.client.get(f"/v1/promotion-meetings/{promotion}/agenda", headers=lead)
    assert response.status_code == 200, response.text

    named = {dv, other, drafted.event_id, *(event.id for event in events)}
    assert [name for name in named if name and name in response.text] == []
    items = response.json()["items"]
    needs = {line["detail"]["item"]: line["detail"] for line in items["ウ"]["lines"]}
    new, awaiting = needs["new_difficult_cases"], needs["plans_awaiting_approval"]
    assert (new["cases"], new["by_tier"]) == (2, {"tier2": 1, "tier3": 1})
    assert new["by_pattern"] == {"multiple_members": 1, "prefecture_category": 1}
    assert awaiting["plans"] == 1
    assert [line["detail"] for line in items["エ"]["lines"]] == [
        {"item": "resource_gaps", "cases": 1, "partner_types": 1, "by_area": {"unknown": 1}},
        {"item": "resource_gap", "partner_type": "shelter", "cases": 1, "by_area": {"unknown": 1}},
    ]

    # A network member reads it too; the neighbour's operator finds no such meeting, nor may convene here.
    member = await conference.client.get(
        f"/v1/promotion-meetings/{promotion}/agenda", headers=bearer("hoken-08", Scope.coordinator)
    )
    assert member.status_code == 200
    neighbour = bearer("operator", Scope.operator, municipalities=(NEIGHBOUR,))
    assert not_found(
        await conference.client.get(f"/v1/promotion-meetings/{promotion}/agenda", headers=neighbour), promotion
    )
    refused = await conference.client.post(
        "/v1/promotion-meetings", json={"municipality_code": NABARI}, headers=neighbour
    )
    assert refused.status_code == 404


async def test_a_case_meeting_is_seen_only_by_its_agencies_within_their_municipalities(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id, neighbours_case = str(uuid.uuid4()), str(uuid.uuid4())
    conference.route(routed(case_id, ["hoken-07"]))
    conference.route(routed(neighbours_case, ["hoken-07"], code=NEIGHBOUR))
    with db.transaction(conference.engine) as session:
        [meeting] = list_meetings(session, case_id=case_id)
        [elsewhere] = list_meetings(session, case_id=neighbours_case)
    client = conference.client
    path = f"/v1/meetings/{meeting.id}"

    partner = bearer("hoken-07", Scope.coordinator, municipalities=(NABARI,))
    outsider = bearer("hoken-08", Scope.coordinator, municipalities=(NABARI,))
    operator = bearer("operator", Scope.operator, municipalities=(NABARI,))
    neighbour_operator = bearer("operator", Scope.operator, municipalities=(NEIGHBOUR,))
    partner_elsewhere = bearer("hoken-07", Scope.coordinator, municipalities=(NEIGHBOUR,))
    platform = bearer("platform", Scope.operator, Scope.platform, municipalities=())

    for allowed in (partner, operator, platform, bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))):
        assert (await client.get(path, headers=allowed)).status_code == 200
    missing = str(uuid.uuid4())
    assert not_found(await client.get(f"/v1/meetings/{missing}", headers=outsider), missing)
    for refused in (outsider, neighbour_operator, partner_elsewhere):
        assert not_found(await client.get(path, headers=refused), meeting.id)
        assert (await client.get(f"/v1/meetings?case_id={case_id}", headers=refused)).json() == []
        # Acting on it is no different: there is nothing to act on.
        cancel = await client.post(f"{path}/cancel", json={"reason": "probe"}, headers=refused)
        assert not_found(cancel, meeting.id)

    # The lists: each credential its own municipalities' meetings; an agency only those it takes part in.
    listed = {m["id"] for m in (await client.get("/v1/meetings", headers=operator)).json()}
    assert meeting.id in listed and elsewhere.id not in listed
    assert {m["id"] for m in (await client.get("/v1/meetings", headers=platform)).json()} >= {meeting.id, elsewhere.id}
    assert {m["id"] for m in (await client.get("/v1/meetings", headers=partner)).json()} == {meeting.id}

    # A participant who does not run the meeting learns nothing new from being refused the action.
    assert (await client.post(f"{path}/cancel", json={"reason": "not mine"}, headers=partner)).status_code == 403

    # Calendars list only meetings of the municipalities the credential serves.
    async def calendar(headers: dict[str, str]) -> str:
        response = await client.get("/v1/calendars/hoken-07.ics", headers=headers)
        assert response.status_code == 200
        return response.text

    assert meeting.id in await calendar(partner) and elsewhere.id not in await calendar(partner)
    assert meeting.id not in await calendar(partner_elsewhere) and elsewhere.id in await calendar(partner_elsewhere)

    # The partner rejects: off the invitation list, and the meeting no longer exists for it.
    referral_id = str(uuid.uuid4())
    with db.transaction(conference.engine) as session:
        apply_referral_requested(session, referral(case_id, "hoken-07", referral_id=referral_id))
        apply_referral_status(session, status_changed(referral_id, case_id, "hoken-07", "rejected", 3))
    assert not_found(await client.get(path, headers=partner), meeting.id)
    assert (await client.get(f"/v1/meetings?case_id={case_id}", headers=partner)).json() == []


async def test_each_invitation_and_record_read_of_a_case_meeting_is_on_the_ledger(
    conference: Conference, bearer: Callable[..., dict[str, str]]
) -> None:
    case_id, referral_id = str(uuid.uuid4()), str(uuid.uuid4())
    with db.transaction(conference.engine) as session:
        # The referral arrives before the decision (the two topics are read independently).
        apply_referral_requested(session, referral(case_id, "hoken-07", referral_id=referral_id))
    conference.route(routed(case_id, ["hoken-07"]))
    with db.transaction(conference.engine) as session:
        [meeting] = list_meetings(session, case_id=case_id)
        invitations = published(session, MeetingInvitation)
    invitation_fields = sorted(MeetingInvitation.model_fields)

    # One row per invitation sent, on the agency's engagement: its referral, or the meeting for the lead.
    rows = conference.ledger()
    assert [(r.recipient, r.channel, r.basis, r.basis_ref, r.outcome) for r in rows] == [
        ("hoken-07", "meeting_invitation", "engagement", referral_id, "released"),
        (LEAD, "meeting_invitation", "engagement", meeting.id, "released"),
    ]
    assert all(r.case_id == case_id and r.fields == invitation_fields for r in rows)
    assert len(rows) == len(invitations)

    # Each read of the meeting's record: on the engagement, as the operator, or refused (and still 404).
    client = conference.client
    readers = [
        bearer("hoken-07", Scope.coordinator, municipalities=(NABARI,)),
        bearer("operator", Scope.operator, municipalities=(NABARI,)),
        bearer("hoken-08", Scope.coordinator, municipalities=(NABARI,)),
        bearer("operator", Scope.operator, municipalities=(NEIGHBOUR,)),
    ]
    statuses = [(await client.get(f"/v1/meetings/{meeting.id}", headers=h)).status_code for h in readers]
    assert statuses == [200, 200, 404, 404]
    reads = conference.ledger()[len(rows) :]
    assert [(r.recipient, r.channel, r.basis, r.basis_ref, r.outcome) for r in reads] == [
        ("hoken-07", "meeting_record", "engagement", referral_id, "released"),
        ("operator", "meeting_record", "operator", None, "released"),
        ("hoken-08", "meeting_record", "none", None, "refused"),
        ("operator", "meeting_record", "none", None, "refused"),
    ]
    assert {"case_id", "participants", "starts_at"} <= set(reads[0].fields)

    # A list that shows the meeting reads its record too; one that cannot show it records nothing.
    listed = await client.get(f"/v1/meetings?case_id={case_id}", headers=readers[0])
    assert [m["id"] for m in listed.json()] == [meeting.id]
    assert (await client.get(f"/v1/meetings?case_id={case_id}", headers=readers[2])).json() == []
    reads = conference.ledger()[len(rows) :]
    assert [(r.recipient, r.channel, r.basis, r.basis_ref, r.outcome) for r in reads[4:]] == [
        ("hoken-07", "meeting_record", "engagement", referral_id, "released"),
    ]

    # A 推進会議 carries no case: neither its invitations nor its reads are releases of one.
    lead = bearer(LEAD, Scope.coordinator, municipalities=(NABARI,))
    promotion = (await client.post("/v1/promotion-meetings", json={"municipality_code": NABARI}, headers=lead)).json()
    assert (await client.get(f"/v1/meetings/{promotion['id']}", headers=lead)).status_code == 200
    assert len(conference.ledger()) == len(rows) + len(reads)
