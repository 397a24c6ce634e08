"""End to end through four separate service processes, the real broker and PostgreSQL."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import upgrade_databases
from shared.events import ReferralRequested, decode
from shared.settings import Settings
from tests.conftest import read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess

pytestmark = pytest.mark.e2e

# 実施要領 table row 1 (8050): a parent needing care and a child in ひきこもり, in 名張市's 地域07.
CONSULTATION_8050 = {
    "municipality_code": "242080",
    "area": "chiiki-07",
    "pathway": "family_or_community",
    "household": [
        {"relation": "self", "age": 83, "issues": ["long_term_care"]},
        {"relation": "child", "age": 52, "issues": ["hikikomori", "employment"]},
    ],
}
ENGAGED_8050 = {"nabari-houkatsu", "hoken-07", "mie-hikikomori", "mie-saposute", "hellowork-nabari"}


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    upgrade_databases(settings)
    env = service_env(settings)
    services = {name: ServiceProcess(name, env, tmp_path) for name in ("intake", "router", "conference", "metrics")}
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        for service in services.values():
            service.stop()


async def poll_json(url: str, until: Any, timeout_s: float = 30.0) -> Any:
    """GET `url` until `until(json)` holds; returns the last body."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    body: Any = None
    async with httpx.AsyncClient(timeout=5) as client:
        while asyncio.get_running_loop().time() < deadline:
            response = await client.get(url)
            if response.status_code == 200:
                body = response.json()
                if until(body):
                    return body
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} never satisfied the condition; last body: {body}")


def indicator(report: dict[str, Any], indicator_id: str) -> dict[str, Any]:
    return next(i for i in report["indicators"] if i["id"] == indicator_id)


async def test_consultation_is_routed_referred_scheduled_and_counted(
    stack: dict[str, ServiceProcess], settings: Settings
) -> None:
    for name, service in stack.items():
        assert service.process is not None and service.process.pid, name
    assert len({s.process.pid for s in stack.values() if s.process}) == 4, "four separate OS processes"

    async with httpx.AsyncClient(base_url=stack["intake"].url, timeout=10) as client:
        response = await client.post("/v1/consultations", json=CONSULTATION_8050)
    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]

    # A plain aiokafka consumer, not part of the project, reads the routed referrals from Kafka.
    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, ReferralRequested),
        until=lambda rs: len([r for r in rs if r.key == case_id.encode()]) >= len(ENGAGED_8050),
    )
    referrals = [decode(r.value, ReferralRequested) for r in records if r.key == case_id.encode()]
    assert {r.data.agency_id for r in referrals} == ENGAGED_8050
    assert all(r.data.tier == 2 and r.subject == case_id and r.municipalitycode == "242080" for r in referrals)
    assert {r.data.rule_id for r in referrals} >= {"lead", "partner"}

    decision = await poll_json(f"{stack['router'].url}/v1/cases/{case_id}/decision", lambda body: True)
    assert decision["tier"] == 2
    assert decision["lead"] == "nabari-houkatsu"
    assert {p["id"] for p in decision["patterns"]} == {"multiple_members", "multiple_issues"}

    meetings = await poll_json(f"{stack['conference'].url}/v1/meetings?case_id={case_id}", lambda body: len(body) == 1)
    assert set(meetings[0]["participants"]) == ENGAGED_8050

    report = await poll_json(
        f"{stack['metrics'].url}/v1/indicators?municipality=242080",
        lambda body: (
            indicator(body, "OPS-CASE-MEETINGS")["value"] == 1
            and indicator(body, "OPS-REFERRALS")["value"] == len(ENGAGED_8050)
        ),
    )
    assert indicator(report, "M8")["value"] == 1
    assert indicator(report, "M8")["by_dimension"] == {"family_or_community": 1}
    assert indicator(report, "OPS-DECISIONS")["by_dimension"] == {"tier2": 1}
    assert indicator(report, "OPS-REFERRALS")["value"] == 5
