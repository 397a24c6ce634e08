"""Only a live referral engages an agency on a case: what a rejected, cancelled or completed one leaves."""

import uuid

import httpx
import pytest

from shared.events import ReferralStatus
from shared.settings import Settings
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import (
    ENGAGED,
    publish_referral,
    publish_status,
    until_json,
    until_status,
    with_person,
)


async def engaged_case_with_consent(
    intake: httpx.AsyncClient, settings: Settings, as_partner: dict[str, str], as_engaged: dict[str, str]
) -> tuple[str, str]:
    """A case referred to ENGAGED under a consent for every engaged agency; returns (case id, referral id)."""
    body = with_person(CONSULTATION_8050, 0, name="名張 花子", birth_date="1942-05-03")
    response = await intake.post("/v1/consultations", json=body, headers=as_partner)
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    referral_id = await publish_referral(settings, case_id, ENGAGED)
    await until_status(intake, f"/v1/cases/{case_id}", as_engaged, 200)
    consent = await intake.post(
        f"/v1/cases/{case_id}/consents",
        json={"given_by": "self", "members": [0], "share_with": ["engaged"]},
        headers=as_partner,
    )
    assert consent.status_code == 201, consent.text
    details = await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_engaged)
    assert details.status_code == 200, "engaged and consented: the precondition of what follows"
    return case_id, referral_id


async def until_referral_status(
    intake: httpx.AsyncClient, case_id: str, as_partner: dict[str, str], status: str
) -> None:
    """Wait until intake has applied the referral's move to `status` (seen on the submitter's timeline)."""
    await until_json(
        intake,
        f"/v1/cases/{case_id}",
        as_partner,
        lambda case: [r["status"] for r in case["referrals"] if r["agency_id"] == ENGAGED] == [status],
    )


@pytest.mark.parametrize("ended", ["rejected", "cancelled", "failed"])
async def test_an_agency_whose_referral_ended_reads_neither_the_case_nor_personal_details(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_engaged: dict[str, str],
    ended: ReferralStatus,
) -> None:
    case_id, referral_id = await engaged_case_with_consent(intake, intake_settings, as_partner, as_engaged)
    await publish_status(intake_settings, case_id, referral_id, ENGAGED, ended)
    await until_referral_status(intake, case_id, as_partner, ended)

    details = await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_engaged)
    assert details.status_code == 404, "a consent for every engaged agency no longer covers it; its part ended"
    assert details.json()["type"].endswith("/case-not-found")
    case = await intake.get(f"/v1/cases/{case_id}", headers=as_engaged)
    assert case.status_code == 404
    assert case.json()["type"].endswith("/case-not-found")
    assert case_id not in {c["id"] for c in (await intake.get("/v1/cases", headers=as_engaged)).json()}
    contact = await intake.post(f"/v1/cases/{case_id}/contacts", json={"pathway": "self"}, headers=as_engaged)
    assert contact.status_code == 404

    own = await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_partner)
    assert own.status_code == 200, "the submitting agency keeps reading its own case"


async def test_an_agency_whose_referral_completed_reads_the_history_but_not_personal_details(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str], as_engaged: dict[str, str]
) -> None:
    case_id, referral_id = await engaged_case_with_consent(intake, intake_settings, as_partner, as_engaged)
    await publish_status(intake_settings, case_id, referral_id, ENGAGED, "completed", from_status="in_progress")
    await until_referral_status(intake, case_id, as_partner, "completed")

    case = await intake.get(f"/v1/cases/{case_id}", headers=as_engaged)
    assert case.status_code == 200, "the history it took part in"
    assert case_id in {c["id"] for c in (await intake.get("/v1/cases", headers=as_engaged)).json()}
    details = await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_engaged)
    assert details.status_code == 403
    assert "completed" in details.json()["detail"]
    contact = await intake.post(f"/v1/cases/{case_id}/contacts", json={"pathway": "self"}, headers=as_engaged)
    assert contact.status_code == 403
    assert contact.json()["type"].endswith("/referral-completed")


async def test_a_new_live_referral_engages_the_agency_again(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str], as_engaged: dict[str, str]
) -> None:
    case_id, referral_id = await engaged_case_with_consent(intake, intake_settings, as_partner, as_engaged)
    await publish_status(intake_settings, case_id, referral_id, ENGAGED, "rejected")
    await until_status(intake, f"/v1/cases/{case_id}", as_engaged, 404)

    await publish_referral(intake_settings, case_id, ENGAGED)
    await until_status(intake, f"/v1/cases/{case_id}/personal-details", as_engaged, 200)


async def test_a_rejection_that_arrives_before_its_request_still_ends_the_engagement(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str], as_engaged: dict[str, str]
) -> None:
    # Requests and status changes travel on different topics, so intake may see the rejection first.
    response = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=as_partner)
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    referral_id = str(uuid.uuid4())
    await publish_status(intake_settings, case_id, referral_id, ENGAGED, "rejected")
    await until_referral_status(intake, case_id, as_partner, "rejected")

    await publish_referral(intake_settings, case_id, ENGAGED, referral_id)
    case = await until_json(
        intake,
        f"/v1/cases/{case_id}",
        as_partner,
        lambda body: any(r["agency_type"] for r in body["referrals"]),
    )
    assert [(r["referral_id"], r["status"]) for r in case["referrals"]] == [(referral_id, "rejected")]
    assert (await intake.get(f"/v1/cases/{case_id}", headers=as_engaged)).status_code == 404
