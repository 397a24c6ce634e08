"""消去 on request and the operator's view of coming erasures (issue 26), through intake's HTTP API: intake learns
終結 from conference's events, an operator sees what the retention job will erase, erases an ended case ahead
of its period on the household's request (refused for a case still open unless the law gives a ground), and
everything after that says only that the erasure happened."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import Scope
from shared.case_keys import CaseKeys
from shared.events import CaseLifeChanged
from shared.settings import Settings
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import publish_as_router, until_json, with_person

TOWN = "242080"


async def submitted(intake: httpx.AsyncClient, as_partner: dict[str, str]) -> str:
    body = with_person(CONSULTATION_8050, 0, name="消去 一郎", phone="0595-22-3333")
    response = await intake.post("/v1/consultations", json=body, headers=as_partner)
    assert response.status_code == 202, response.text
    return str(response.json()["case_id"])


async def ended(intake: httpx.AsyncClient, settings: Settings, case_id: str, at: datetime, operator: Any) -> None:
    """Conference records the case's 終結; intake learns it."""
    await publish_as_router(settings, case_id, CaseLifeChanged(case_id=case_id, state="closed", changed_at=at))
    await until_json(intake, f"/v1/cases/{case_id}", operator, lambda body: body["closed_at"] is not None)


async def test_an_operator_sees_what_the_job_will_erase_in_the_next_30_days(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_operator: dict[str, str],
    bearer: Callable[..., dict[str, str]],
) -> None:
    soon, later = await submitted(intake, as_partner), await submitted(intake, as_partner)
    now = datetime.now(UTC)
    # Ended five years (the default period) less ten days ago, and less a year ago.
    await ended(intake, intake_settings, soon, now - timedelta(days=5 * 365 - 10), as_operator)
    await ended(intake, intake_settings, later, now - timedelta(days=365), as_operator)

    upcoming = (await intake.get("/v1/retention/upcoming", headers=as_operator)).json()
    by_case = {entry["case_id"]: entry for entry in upcoming}
    assert soon in by_case and later not in by_case
    assert by_case[soon]["basis"] == "closure" and by_case[soon]["municipality_code"] == TOWN
    erase_on = datetime.fromisoformat(by_case[soon]["erase_on"]).date()
    assert now.date() < erase_on <= (now + timedelta(days=12)).date()
    assert set(by_case[soon]) == {"case_id", "municipality_code", "basis", "basis_at", "erase_on"}, "no details"
    wider = (await intake.get("/v1/retention/upcoming?within_days=366", headers=as_operator)).json()
    assert soon in {e["case_id"] for e in wider}

    assert (await intake.get("/v1/retention/upcoming", headers=as_partner)).status_code == 403
    elsewhere = bearer("operator", Scope.operator, municipalities=("242098",))
    assert soon not in {e["case_id"] for e in (await intake.get("/v1/retention/upcoming", headers=elsewhere)).json()}

    # A case reopened by a new contact is no longer counted from its 終結.
    reopened = CaseLifeChanged(case_id=soon, state="reopened", changed_at=datetime.now(UTC))
    await publish_as_router(intake_settings, soon, reopened)
    await until_json(intake, f"/v1/cases/{soon}", as_operator, lambda body: body["closed_at"] is None)
    assert soon not in {e["case_id"] for e in (await intake.get("/v1/retention/upcoming", headers=as_operator)).json()}


async def test_erasure_on_request_of_an_ended_case(
    intake: httpx.AsyncClient,
    intake_settings: Settings,
    as_partner: dict[str, str],
    as_operator: dict[str, str],
    bearer: Callable[..., dict[str, str]],
) -> None:
    case_id = await submitted(intake, as_partner)
    path = f"/v1/cases/{case_id}/erasure"
    request = {"requested_by": "self", "ground": "no_longer_needed"}

    still_open = await intake.post(path, json=request, headers=as_operator)
    assert still_open.status_code == 409 and still_open.json()["type"].endswith("/erasure-not-allowed")
    assert (await intake.post(path, json=request, headers=as_partner)).status_code == 403
    elsewhere = bearer("operator", Scope.operator, municipalities=("242098",))
    assert (await intake.post(path, json=request, headers=elsewhere)).status_code == 404
    assert (await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_partner)).status_code == 200

    await ended(intake, intake_settings, case_id, datetime.now(UTC), as_operator)
    erased = await intake.post(path, json=request, headers=as_operator)
    assert erased.status_code == 201, erased.text
    body = erased.json()
    assert (body["kind"], body["status"], body["close_note"]) == ("erasure", "erased", "no_longer_needed")
    assert datetime.fromisoformat(body["deadline"]) > datetime.fromisoformat(body["received_at"])

    assert CaseKeys.from_settings(intake_settings).state(case_id) == "erased"
    case = (await intake.get(f"/v1/cases/{case_id}", headers=as_operator)).json()
    assert case["status"] == "erased" and case["erased_at"] is not None
    gone = await intake.get(f"/v1/cases/{case_id}/personal-details", headers=as_partner)
    assert gone.status_code == 410 and gone.json()["type"].endswith("/case-erased")
    again = await intake.post(path, json=request, headers=as_operator)
    assert again.status_code == 410
    requests = (await intake.get(f"/v1/cases/{case_id}/requests", headers=as_operator)).json()
    assert [(r["kind"], r["status"]) for r in requests] == [("erasure", "erased")]
    ledger = (await intake.get(f"/v1/cases/{case_id}/disclosures", headers=as_operator)).json()
    assert [(r["channel"], r["outcome"], r["fields"]) for r in ledger if r["channel"] == "erasure"] == [
        ("erasure", "erased", [])
    ]


async def test_a_case_still_open_is_erased_at_once_where_its_data_were_handled_unlawfully(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str], as_operator: dict[str, str]
) -> None:
    case_id = await submitted(intake, as_partner)
    request = {"requested_by": "legal_representative", "ground": "unlawful_handling"}
    erased = await intake.post(f"/v1/cases/{case_id}/erasure", json=request, headers=as_operator)
    assert erased.status_code == 201, erased.text
    assert CaseKeys.from_settings(intake_settings).state(case_id) == "erased"
