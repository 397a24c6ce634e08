"""Contacts with new facts: members first seen at a later contact, issues newly seen on known members, and a
change of urgency, stored on the case and published on ContactRecorded without personal details."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text

from shared import db
from shared.auth import Scope
from shared.events import ContactRecorded, Envelope, decode
from shared.settings import Settings
from tests.conftest import read_events, topic_of
from tests.e2e.test_spine import CONSULTATION_8050

GRANDCHILD_NAME = "名張 孫"


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = db.make_engine(settings, "intake")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


async def submit(intake: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any] | None = None) -> str:
    response = await intake.post("/v1/consultations", json=body or CONSULTATION_8050, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["case_id"])


async def contact(intake: httpx.AsyncClient, headers: dict[str, str], case_id: str, body: dict[str, Any]) -> str:
    response = await intake.post(f"/v1/cases/{case_id}/contacts", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["contact_id"])


async def recorded(settings: Settings, case_id: str, count: int) -> list[Envelope[ContactRecorded]]:
    """The case's ContactRecorded events as the broker has them, once there are `count`."""
    key = case_id.encode()
    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, ContactRecorded),
        until=lambda rs: sum(r.key == key for r in rs) >= count,
    )
    for record in records:
        if record.key == key:
            assert GRANDCHILD_NAME not in record.value.decode(), "personal details never leave intake"
    return [decode(r.value, ContactRecorded) for r in records if r.key == key]


def grandchild(name: str) -> dict[str, Any]:
    return {
        "relation": "grandchild",
        "age": 15,
        "issues": ["education"],
        "name": name,
        "birth_date": "2011-04-02",
    }


async def test_new_members_and_issues_are_stored_and_published_without_personal_details(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await submit(intake, as_partner)
    contact_id = await contact(
        intake,
        as_partner,
        case_id,
        {
            "pathway": "specialist_agency",
            "urgency": "urgent",
            "members": [grandchild(GRANDCHILD_NAME)],
            # hikikomori is already known of member 1: only poverty is new.
            "issues": [{"position": 1, "issues": ["poverty", "hikikomori"]}],
        },
    )

    [event] = await recorded(intake_settings, case_id, 1)
    assert event.data.contact_id == contact_id
    assert [m.model_dump(mode="json") for m in event.data.added_members] == [
        {"relation": "grandchild", "issues": ["education"], "age_band": "13-17"}
    ]
    assert [i.model_dump(mode="json") for i in event.data.added_issues] == [{"position": 1, "issues": ["poverty"]}]
    assert event.data.urgency == "urgent"

    members = query(
        intake_settings,
        "SELECT position, relation, issues FROM intake.member WHERE case_id = :c ORDER BY position",
        c=case_id,
    )
    assert [(p, r) for p, r, _ in members] == [(0, "self"), (1, "child"), (2, "grandchild")]
    assert members[1][2] == ["hikikomori", "employment", "poverty"]
    [(urgency,)] = query(intake_settings, 'SELECT urgency FROM intake."case" WHERE id = :c', c=case_id)
    assert urgency == "urgent"
    [(facts,)] = query(intake_settings, "SELECT facts FROM intake.contact WHERE id = :c", c=contact_id)
    assert GRANDCHILD_NAME not in str(facts) and "2011-04-02" not in str(facts), "the contact's facts hold no details"

    # Stored encrypted, and released to the submitting agency as any member's details.
    released = await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_partner)
    assert released.status_code == 200, released.text
    by_position = {m["position"]: m for m in released.json()["members"]}
    assert by_position[2]["name"] == GRANDCHILD_NAME and by_position[2]["age"] == 15
    [(personal,)] = query(
        intake_settings, "SELECT personal FROM intake.member WHERE case_id = :c AND position = 2", c=case_id
    )
    assert set(personal) == {"name", "birth_date"} and GRANDCHILD_NAME not in str(personal)


async def test_a_member_added_at_a_contact_is_recognised_in_a_later_submission(
    intake: httpx.AsyncClient, as_partner: dict[str, str]
) -> None:
    name = f"名張 {uuid.uuid4().hex[:8]}"
    case_id = await submit(intake, as_partner)
    await contact(intake, as_partner, case_id, {"pathway": "self", "members": [grandchild(name)]})

    later = {**CONSULTATION_8050, "household": [grandchild(name)]}
    response = await intake.post("/v1/consultations", json=later, headers=as_partner)
    assert response.status_code == 202, response.text
    assert [d["case_id"] for d in response.json()["possible_duplicates"]] == [case_id]


async def test_urgency_left_out_or_said_again_is_unchanged_and_a_change_is_published(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await submit(intake, as_partner)  # routine
    await contact(intake, as_partner, case_id, {"pathway": "self"})  # an old client's body
    await contact(intake, as_partner, case_id, {"pathway": "self", "urgency": "routine"})
    await contact(intake, as_partner, case_id, {"pathway": "self", "urgency": "soon"})
    await contact(intake, as_partner, case_id, {"pathway": "self", "urgency": "soon"})

    events = sorted(await recorded(intake_settings, case_id, 4), key=lambda e: e.data.received_at)
    assert [e.data.urgency for e in events] == [None, None, "soon", None]
    assert all(e.data.added_members == [] and e.data.added_issues == [] for e in events)
    [(urgency,)] = query(intake_settings, 'SELECT urgency FROM intake."case" WHERE id = :c', c=case_id)
    assert urgency == "soon"
    timeline = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert [c["kind"] for c in timeline["contacts"]] == ["opening"] + ["follow_up"] * 4, "one case: one 実件数"


async def test_an_unknown_position_or_too_large_a_household_is_a_422_naming_the_field_and_stores_nothing(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await submit(intake, as_partner)
    url = f"/v1/cases/{case_id}/contacts"
    body = {
        "pathway": "self",
        "members": [{"relation": "grandchild", "issues": ["education"]}],
        "issues": [{"position": 0, "issues": ["poverty"]}, {"position": 2, "issues": ["housing"]}],
    }
    response = await intake.post(url, json=body, headers=as_partner)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "issues.1.position" and error["label"] == "世帯員の番号"
    assert "position 2" in error["message"], "a member added by the same contact is not a known member"

    crowd = [{"relation": "other"}] * 29
    response = await intake.post(url, json={"pathway": "self", "members": crowd}, headers=as_partner)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["members"]

    members = query(intake_settings, "SELECT issues FROM intake.member WHERE case_id = :c ORDER BY position", c=case_id)
    assert [issues for (issues,) in members] == [["long_term_care"], ["hikikomori", "employment"]]
    timeline = (await intake.get(url.removesuffix("/contacts"), headers=as_partner)).json()
    assert [c["kind"] for c in timeline["contacts"]] == ["opening"]


async def test_a_credential_of_another_municipality_reaches_no_case_to_add_facts_to(
    intake: httpx.AsyncClient, as_partner: dict[str, str], bearer: Callable[..., dict[str, str]]
) -> None:
    case_id = await submit(intake, as_partner)
    elsewhere = bearer("nabari-shakyo", Scope.submit, Scope.read_own, municipalities=("242098",))
    body = {"pathway": "self", "issues": [{"position": 0, "issues": ["poverty"]}]}
    response = await intake.post(f"/v1/cases/{case_id}/contacts", json=body, headers=elsewhere)
    assert response.status_code == 404
    timeline = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert len(timeline["contacts"]) == 1
