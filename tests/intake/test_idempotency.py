"""Idempotency-Key on intake's other POSTs: contacts, consents and consent revocations."""

import uuid

import httpx
from sqlalchemy import text

from shared import db
from shared.settings import Settings
from tests.e2e.test_spine import CONSULTATION_8050

CONSENT = {"given_by": "self", "members": [0], "share_with": ["engaged"]}


async def new_case(intake: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["case_id"])


def staged_events(settings: Settings, case_id: str) -> int:
    """How many events intake has staged for the case (published or not: see `log_staged_events`)."""
    engine = db.make_engine(settings, "intake")
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM intake.staged_event WHERE key = :case_id")
            return int(conn.execute(query, {"case_id": case_id}).scalar_one())
    finally:
        engine.dispose()


def with_key(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": f"k-{uuid.uuid4()}"}


async def test_same_key_twice_adds_one_contact_and_a_different_body_is_refused(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await new_case(intake, as_partner)
    url = f"/v1/cases/{case_id}/contacts"
    headers = with_key(as_partner)
    first = await intake.post(url, json={"pathway": "self"}, headers=headers)
    second = await intake.post(url, json={"pathway": "self"}, headers=headers)
    assert first.status_code == second.status_code == 202, first.text
    assert second.json() == first.json(), "the first response, contact id included"

    timeline = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert [c["kind"] for c in timeline["contacts"]] == ["opening", "follow_up"]
    assert staged_events(intake_settings, case_id) == 2, "one consultation and one contact event, no more"

    reused = await intake.post(url, json={"pathway": "government"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    other_case = await new_case(intake, as_partner)
    elsewhere = await intake.post(f"/v1/cases/{other_case}/contacts", json={"pathway": "self"}, headers=headers)
    assert elsewhere.status_code == 422, "the same body on another case is another request"

    fresh = await intake.post(url, json={"pathway": "self"}, headers=with_key(as_partner))
    assert fresh.status_code == 202 and fresh.json()["contact_id"] != first.json()["contact_id"]


async def test_same_key_twice_records_one_consent_and_a_different_body_is_refused(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await new_case(intake, as_partner)
    url = f"/v1/cases/{case_id}/consents"
    headers = with_key(as_partner)
    first = await intake.post(url, json=CONSENT, headers=headers)
    second = await intake.post(url, json=CONSENT, headers=headers)
    assert first.status_code == second.status_code == 201, first.text
    assert second.json() == first.json()

    timeline = (await intake.get(f"/v1/cases/{case_id}", headers=as_partner)).json()
    assert [c["id"] for c in timeline["consents"]] == [first.json()["id"]]
    assert staged_events(intake_settings, case_id) == 2, "one consultation and one consent event, no more"

    reused = await intake.post(url, json={**CONSENT, "given_by": "family"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")


async def test_same_key_twice_revokes_once_and_replays_instead_of_conflicting(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    case_id = await new_case(intake, as_partner)
    consent = await intake.post(f"/v1/cases/{case_id}/consents", json=CONSENT, headers=as_partner)
    assert consent.status_code == 201, consent.text
    url = f"/v1/cases/{case_id}/consents/{consent.json()['id']}/revocation"
    headers = with_key(as_partner)
    first = await intake.post(url, json={"reason": "person_request"}, headers=headers)
    second = await intake.post(url, json={"reason": "person_request"}, headers=headers)
    assert first.status_code == second.status_code == 200, second.text
    assert second.json() == first.json(), "a retry gets the revocation, not a 409"
    assert staged_events(intake_settings, case_id) == 3, "consultation, consent and one revocation"

    reused = await intake.post(url, json={"reason": "support_ended"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    again = await intake.post(url, json={"reason": "person_request"}, headers=with_key(as_partner))
    assert again.status_code == 409, "without the same key it is a second revocation"
