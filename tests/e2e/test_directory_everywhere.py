"""One directory for every service (issue 24, done-when 4): an admin's PUT at the router reaches intake,
conference and metrics through `DirectoryPublished` within seconds, with no service restarted."""

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.directory import demo_directory_path, load_directory
from shared.events import DirectoryPublished, decode
from shared.settings import Settings
from tests.conftest import read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_spine import indicator, poll_json

pytestmark = pytest.mark.e2e

NEW_AREA = "chiiki-16"  # not in the demo directory: intake refuses it until the PUT
NEW_LEAD = "nabari-suishin"
OLD_LEAD = "nabari-houkatsu"
PARTNER = "nabari-shakyo"

CONSULTATION = {  # an 8050 household in the new area: tier 2, so a case meeting of the lead and partners
    "municipality_code": "242080",
    "area": NEW_AREA,
    "pathway": "family_or_community",
    "household": [
        {"relation": "self", "age": 83, "issues": ["long_term_care"]},
        {"relation": "child", "age": 52, "issues": ["hikikomori", "employment"]},
    ],
}


def changed_directory() -> dict[str, Any]:
    """The demo directory with a new 地域 (served by the 第5中学校区 保健室), a new lead (推進員 moved to a new office)
    and the 社協 as the general window."""
    body: dict[str, Any] = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    municipality = body["municipality"]
    municipality["areas"].append(
        {"id": NEW_AREA, "name": "地域16", "kind": "elementary_school_district", "parent": "chu-5"}
    )
    municipality["lead"] = NEW_LEAD
    municipality["general_window"] = PARTNER
    body["agencies"].append(
        {
            "id": NEW_LEAD,
            "name": "名張市 地域包括ケア推進室",
            "type": "community_comprehensive_support_center",
            "scope": "municipality",
            "sector": "welfare",
        }
    )
    return body


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    upgrade_databases(settings)
    with running(("intake", "router", "conference", "metrics"), service_env(settings), tmp_path) as services:
        yield services


async def test_admin_directory_change_reaches_every_service_without_restart(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    pids = {name: service.process.pid for name, service in stack.items() if service.process is not None}
    partner = bearer(PARTNER, Scope.submit, Scope.read_own)
    operator = bearer("operator", Scope.operator, Scope.coordinator)
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    async with httpx.AsyncClient(base_url=stack["intake"].url, headers=partner, timeout=10) as intake:
        refused = await intake.post("/v1/consultations", json=CONSULTATION)
        assert refused.status_code == 422, refused.text
        assert NEW_AREA in refused.text

    body = changed_directory()
    async with httpx.AsyncClient(base_url=stack["router"].url, headers=admin, timeout=10) as router:
        put = await router.put("/v1/directories/242080", json=body, headers=admin)
        assert put.status_code == 200, put.text
    router_version = put.json()["version"]
    assert router_version == load_directory(body).version, "one version id, whoever reads the body"

    # The router published it, keyed by the municipality, naming the version it put in force.
    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, DirectoryPublished),
        until=lambda rs: any(decode(r.value, DirectoryPublished).data.version == router_version for r in rs),
    )
    [published] = [
        decode(r.value, DirectoryPublished)
        for r in records
        if decode(r.value, DirectoryPublished).data.version == router_version
    ]
    assert published.subject == "242080" and published.data.body["municipality"]["lead"] == NEW_LEAD

    # Intake accepts the new area within seconds.
    case_id = await _submit_when_accepted(stack["intake"].url, partner)

    # The router decides under the new directory: the new lead owns the case; conference invites it.
    [meeting] = await poll_json(
        f"{stack['conference'].url}/v1/meetings?case_id={case_id}", lambda b: len(b) == 1, operator
    )
    assert NEW_LEAD in meeting["participants"] and OLD_LEAD not in meeting["participants"]
    # Every record names the one version id: the router's decision and intake's case.
    decision = await poll_json(f"{stack['router'].url}/v1/cases/{case_id}/decision", lambda b: True, operator)
    assert decision["directory_version"] == router_version
    case = await poll_json(f"{stack['intake'].url}/v1/cases/{case_id}", lambda b: True, partner)
    assert case["directory_version"] == router_version

    # Conference's own configuration changed too: the new lead (not an operator) runs the meeting, the
    # old one no longer may, and the held record freezes the new version.
    conference = stack["conference"].url
    attendance = {"attendance": [{"participant": NEW_LEAD, "kind": "agency", "sector": "welfare", "attended": True}]}
    async with httpx.AsyncClient(base_url=conference, timeout=10) as client:
        old = await client.post(
            f"/v1/meetings/{meeting['id']}/attendance", json=attendance, headers=bearer(OLD_LEAD, Scope.coordinator)
        )
        assert old.status_code in (403, 404), old.text
        held = await client.post(
            f"/v1/meetings/{meeting['id']}/attendance", json=attendance, headers=bearer(NEW_LEAD, Scope.coordinator)
        )
        assert held.status_code == 200, held.text
    assert held.json()["directory_version"] == router_version

    # Metrics counts with the new directory: the 社協 is now the general window (総合相談窓口), so its
    # consultation is one of M8's; under the seeded directory (window: 地域包括) it was not.
    report = await poll_json(
        f"{stack['metrics'].url}/v1/indicators?municipality=242080",
        lambda b: indicator(b, "M8")["value"] == 1,
        operator,
        timeout_s=15,
    )
    assert indicator(report, "M8")["value"] == 1

    # Nothing was restarted.
    assert {name: service.process.pid for name, service in stack.items() if service.process is not None} == pids


async def _submit_when_accepted(intake_url: str, partner: dict[str, str]) -> str:
    """POST the consultation until intake takes the new area (it must within ten seconds)."""
    async with httpx.AsyncClient(base_url=intake_url, headers=partner, timeout=10) as client:
        for _ in range(50):
            response = await client.post("/v1/consultations", json=CONSULTATION)
            if response.status_code in (201, 202):
                case_id: str = response.json()["case_id"]
                return case_id
            assert response.status_code == 422, response.text
            await asyncio.sleep(0.2)
    raise AssertionError(f"intake never accepted area {NEW_AREA}")


async def test_published_directory_outlives_a_restart(
    stack: dict[str, ServiceProcess], bearer: Callable[..., dict[str, str]]
) -> None:
    """The files seed a fresh deployment only: a service restarted after the PUT keeps the version the
    router published (its `directory_in_force`), not the file it was started with."""
    partner = bearer(PARTNER, Scope.submit, Scope.read_own)
    operator = bearer("operator", Scope.operator, Scope.coordinator)
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    async with httpx.AsyncClient(base_url=stack["router"].url, headers=admin, timeout=10) as router:
        assert (await router.put("/v1/directories/242080", json=changed_directory())).status_code == 200
    await _submit_when_accepted(stack["intake"].url, partner)
    await poll_json(
        f"{stack['metrics'].url}/v1/indicators?municipality=242080",
        lambda b: indicator(b, "M8")["value"] == 1,
        operator,
        timeout_s=15,
    )

    for name in ("intake", "conference", "metrics"):
        stack[name].stop()
        stack[name].start()
    for name in ("intake", "conference", "metrics"):
        stack[name].wait_ready()

    async with httpx.AsyncClient(base_url=stack["intake"].url, headers=partner, timeout=10) as intake:
        accepted = await intake.post("/v1/consultations", json=CONSULTATION)
        assert accepted.status_code in (201, 202), accepted.text
    report = await poll_json(
        f"{stack['metrics'].url}/v1/indicators?municipality=242080",
        lambda b: indicator(b, "M8")["value"] == 2,
        operator,
        timeout_s=15,
    )
    assert indicator(report, "M8")["value"] == 2
    # Conference's lead is the new one: it convenes the 推進会議, which the seeded lead no longer may.
    async with httpx.AsyncClient(base_url=stack["conference"].url, timeout=10) as conference:
        old = await conference.post(
            "/v1/promotion-meetings",
            json={"municipality_code": "242080"},
            headers=bearer(OLD_LEAD, Scope.coordinator),
        )
        assert old.status_code == 403, old.text
        new = await conference.post(
            "/v1/promotion-meetings",
            json={"municipality_code": "242080"},
            headers=bearer(NEW_LEAD, Scope.coordinator),
        )
        assert new.status_code == 201, new.text
