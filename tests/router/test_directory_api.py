"""The directory admin API: validated, versioned replacements; a decision names the version it saw."""

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.cli import upgrade_databases
from services.router import rules as rules_module
from services.router.app import create
from services.router.rules import Decision
from shared.auth import Scope
from shared.consultation import ConsultationSummary
from shared.directory import Directory, demo_directory_path
from shared.events import ConsultationReceived, encode, new_event
from shared.settings import Settings
from tests.conftest import topic_of


@pytest.fixture
async def router(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(settings, ["router"])
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


def demo_body() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    return body


async def publish_consultation(settings: Settings, case_id: str, area: str) -> None:
    summary = ConsultationSummary.model_validate(
        {"area": area, "pathway": "self", "household": [{"relation": "self", "issues": ["legal", "poverty"]}]}
    )
    data = ConsultationReceived(
        case_id=case_id, consultation_id=case_id, submitted_by="t", received_at=datetime.now(UTC), consultation=summary
    )
    event = new_event(data, source="/test", subject=case_id, municipality_code="242080")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic_of(settings, ConsultationReceived), encode(event), key=case_id.encode())
    finally:
        await producer.stop()


async def test_admins_replace_the_directory_and_decisions_name_the_version_they_saw(
    router: httpx.AsyncClient, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    seeded = (await router.get("/v1/directories/242080", headers=admin)).json()
    assert seeded["source"] == "file"

    forbidden = await router.put("/v1/directories/242080", json=demo_body(), headers=bearer("x", Scope.coordinator))
    assert forbidden.status_code == 403

    broken = copy.deepcopy(demo_body())
    broken["agencies"][1]["areas"] = ["chiiki-99"]
    invalid = await router.put("/v1/directories/242080", json=broken, headers=admin)
    assert invalid.status_code == 422 and "chiiki-99" in invalid.json()["detail"]
    short = {**demo_body(), "intake": {"retention": {"years_after_closure": 0}}}
    refused = await router.put("/v1/directories/242080", json=short, headers=admin)
    assert refused.status_code == 422 and "years_after_closure" in refused.json()["detail"], refused.text

    before = str(uuid.uuid4())
    await publish_consultation(settings, before, "chiiki-01")
    first = await poll_json_asgi(router, f"/v1/cases/{before}/decision", admin)
    assert first["directory_version"] == seeded["version"]
    assert [g["partner_type"] for g in first["resource_gaps"]] == ["legal_support_center"]

    changed = demo_body()
    changed["agencies"].append(
        {
            "id": "houterasu-mie",
            "name": "法テラス三重",
            "type": "legal_support_center",
            "scope": "prefecture",
            "sector": "non_welfare",
        }
    )
    replaced = await router.put("/v1/directories/242080", json=changed, headers=admin)
    assert replaced.status_code == 200, replaced.text
    new_version = replaced.json()["version"]
    assert new_version != seeded["version"] and replaced.json()["source"] == "admin:operator"
    versions = (await router.get("/v1/directories/242080/versions", headers=admin)).json()
    assert [v["version"] for v in versions] == [new_version, seeded["version"]]

    after = str(uuid.uuid4())
    await publish_consultation(settings, after, "chiiki-01")
    second = await poll_json_asgi(router, f"/v1/cases/{after}/decision", admin)
    assert second["directory_version"] == new_version
    assert "houterasu-mie" in {e["agency_id"] for e in second["engaged"]}
    assert second["resource_gaps"] == []
    unchanged = (await router.get(f"/v1/cases/{before}/decision", headers=admin)).json()
    assert unchanged["directory_version"] == seeded["version"], "a past decision keeps the directory it saw"


async def poll_json_asgi(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    for _ in range(150):
        response = await client.get(path, headers=headers)
        if response.status_code == 200:
            return response.json()
        await asyncio.sleep(0.2)
    pytest.fail(f"{path} never answered 200")


async def test_a_directory_that_could_leave_a_case_without_an_owner_is_refused(
    router: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    """A lead that is also a tier-1 place could not take a confidential case: the PUT is a 422, nothing changes."""
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    before = (await router.get("/v1/directories/242080/versions", headers=admin)).json()
    body = demo_body()
    for agency in body["agencies"]:
        if agency["id"] == "nabari-houkatsu":
            agency["roles"] = ["tier1_place"]
            agency["scope"], agency["areas"] = "area", ["chu-1"]
    refused = await router.put("/v1/directories/242080", json=body, headers=admin)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/invalid-directory")
    assert "municipality lead 'nabari-houkatsu' has role tier1_place" in problem["detail"]
    [error] = problem["errors"]
    assert (error["field"], error["label"]) == ("municipality.lead", "協働の中核")
    assert (await router.get("/v1/directories/242080/versions", headers=admin)).json() == before


async def test_unreadable_business_hours_are_refused_naming_the_agency_and_the_field(
    router: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    """The conference service could not start on such a directory, so the router does not accept it either."""
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    body = demo_body()
    body["agencies"][0]["business_hours"] = "平日 8:30-17:15"
    refused = await router.put("/v1/directories/242080", json=body, headers=admin)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == f"agencies.{body['agencies'][0]['id']}.business_hours"
    assert f"agency '{body['agencies'][0]['id']}' has unreadable business_hours" in error["message"]
    body["agencies"][0]["business_hours"] = "mon-fri 08:30-17:15"
    assert (await router.put("/v1/directories/242080", json=body, headers=admin)).status_code == 200


async def test_a_decision_that_would_leave_the_case_without_an_owner_is_dead_lettered(
    router: httpx.AsyncClient,
    settings: Settings,
    bearer: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety net behind the directory checks: rules that engage no one never store a decision."""
    from shared.deadletters import read_dead_letters

    def engage_no_one(consultation: Any, directory: Directory, rules: Any, *, load: Any = None) -> Decision:
        return Decision(
            tier=2, patterns=[], lead=None, engaged=[], resource_gaps=[], directory_version=directory.version
        )

    # The consumer runs in this process, and decisions.route looks decide up on the module when it runs.
    monkeypatch.setattr(rules_module, "decide", engage_no_one)
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    case_id = str(uuid.uuid4())
    await publish_consultation(settings, case_id, "chiiki-01")
    letters = []
    for _ in range(20):
        letters = [x for x in await read_dead_letters(settings, quiet_s=0.5) if x.key == case_id.encode()]
        if letters:
            break
        await asyncio.sleep(0.5)
    [letter] = letters
    assert f"no-owner: no agency may take case {case_id}" in letter.headers["x-dlq-reason"]
    assert (await router.get(f"/v1/cases/{case_id}/decision", headers=admin)).status_code == 404
    assert (await router.get(f"/v1/referrals?case_id={case_id}", headers=admin)).json() == []
