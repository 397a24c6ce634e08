"""Intake's HTTP API in-process, against the real broker and PostgreSQL."""

import httpx

from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import PARTNER


async def test_submission_opens_a_case(intake: httpx.AsyncClient, as_partner: dict[str, str]) -> None:
    response = await intake.post("/v1/consultations", json=CONSULTATION_8050, headers=as_partner)
    assert response.status_code == 202, response.text
    accepted = response.json()
    case = (await intake.get(f"/v1/cases/{accepted['case_id']}", headers=as_partner)).json()
    assert case["municipality_code"] == "242080"
    assert case["submitted_by"] == PARTNER
    assert [c["id"] for c in case["contacts"]] == [accepted["consultation_id"]]
    assert case["status"] == "received"


async def test_invalid_body_is_a_problem_document_listing_each_field(
    intake: httpx.AsyncClient, as_partner: dict[str, str]
) -> None:
    body = {
        **CONSULTATION_8050,
        "municipality_code": "242081",
        "pathway": "telepathy",
        "household": [{"relation": "self", "issues": ["astrology"], "kana": "Yamada"}],
    }
    response = await intake.post("/v1/consultations", json=body, headers=as_partner)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["type"].endswith("/validation-error")
    fields = {e["field"]: e for e in problem["errors"]}
    assert set(fields) == {"municipality_code", "pathway", "household.0.issues.0", "household.0.kana"}
    assert fields["municipality_code"]["label"] == "市町村コード"
    assert "check digit" in fields["municipality_code"]["message"]
    assert fields["pathway"]["label"] == "相談受付経路"
    assert fields["household.0.issues.0"]["label"] == "課題"
    assert "'long_term_care'" in fields["household.0.issues.0"]["message"], "the allowed tags are listed"
    assert fields["household.0.kana"]["label"] == "フリガナ"


async def test_unknown_area_and_unserved_municipality_are_422_naming_the_field(
    intake: httpx.AsyncClient, as_partner: dict[str, str]
) -> None:
    response = await intake.post(
        "/v1/consultations", json={**CONSULTATION_8050, "area": "chiiki-99"}, headers=as_partner
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "area" and error["label"] == "圏域"
    assert "chiiki-07" in error["message"], "the known areas are listed"

    sapporo = {**CONSULTATION_8050, "municipality_code": "011002"}
    response = await intake.post("/v1/consultations", json=sapporo, headers=as_partner)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "municipality_code"


async def test_unknown_case_is_a_404_problem(intake: httpx.AsyncClient, as_partner: dict[str, str]) -> None:
    response = await intake.get("/v1/cases/nope", headers=as_partner)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "no case nope"


async def test_health_readiness_and_asyncapi(intake: httpx.AsyncClient) -> None:
    assert (await intake.get("/healthz")).json()["status"] == "ok"
    ready = (await intake.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["checks"]["database"] is True and ready["checks"]["broker"] is True
    spec = (await intake.get("/asyncapi.json")).json()
    assert spec["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert any(a.endswith("consultation.received") for a in addresses)
    assert any(a.endswith("consent.revoked") for a in addresses)
    openapi = (await intake.get("/openapi.json")).json()
    assert "/v1/consultations" in openapi["paths"]
