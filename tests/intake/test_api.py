"""Intake's HTTP API in-process, against the real broker and PostgreSQL."""

from collections.abc import AsyncIterator

import httpx
import pytest

from services.cli import upgrade_databases
from services.intake.app import create
from shared.settings import Settings
from tests.e2e.test_spine import CONSULTATION_8050


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(settings, ["intake"])
    app = create(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


async def test_submission_opens_a_case(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/consultations", json=CONSULTATION_8050)
    assert response.status_code == 202
    accepted = response.json()
    case = (await client.get(f"/v1/cases/{accepted['case_id']}")).json()
    assert case["municipality_code"] == "242080"
    assert case["consultations"] == [accepted["consultation_id"]]


async def test_invalid_body_is_a_problem_document_listing_each_field(client: httpx.AsyncClient) -> None:
    body = {
        **CONSULTATION_8050,
        "municipality_code": "242081",
        "pathway": "telepathy",
        "household": [{"relation": "self", "issues": ["astrology"]}],
    }
    response = await client.post("/v1/consultations", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["type"].endswith("/validation-error")
    fields = {e["field"]: e for e in problem["errors"]}
    assert set(fields) == {"municipality_code", "pathway", "household.0.issues.0"}
    assert fields["municipality_code"]["label"] == "市町村コード"
    assert "check digit" in fields["municipality_code"]["message"]
    assert fields["pathway"]["label"] == "相談受付経路"
    assert fields["household.0.issues.0"]["label"] == "課題"


async def test_unknown_case_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/cases/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "no case nope"


async def test_health_readiness_and_asyncapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["checks"]["database"] is True and ready["checks"]["broker"] is True
    spec = (await client.get("/asyncapi.json")).json()
    assert spec["asyncapi"].startswith("3.")
    assert any("consultation.received" in channel["address"] for channel in spec["channels"].values())
    openapi = (await client.get("/openapi.json")).json()
    assert "/v1/consultations" in openapi["paths"]
