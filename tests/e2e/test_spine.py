"""End to end through four separate service processes, the real broker and PostgreSQL."""

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import upgrade_databases
from shared import topics
from shared.auth import Scope
from shared.events import ReferralRequested, decode
from shared.settings import Settings
from shared.topics import ALL_TOPICS, DIRECTORY_PUBLISHED, EVENT_TOPICS
from tests.conftest import read_all, read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess, running

pytestmark = pytest.mark.e2e

# 実施要領 table row 1 (8050): a parent needing care and a child in ひきこもり, in 名張市's 地域07.
CONSULTATION_8050: dict[str, Any] = {
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
    with running(("intake", "router", "conference", "metrics"), service_env(settings), tmp_path) as services:
        yield services


async def poll_json(url: str, until: Any, headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> Any:
    """GET `url` until `until(json)` holds; returns the last body."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    body: Any = None
    async with httpx.AsyncClient(timeout=5, headers=headers) as client:
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


PERSONAL = {
    "name": "名張 花子",
    "kana": "ナバリ ハナコ",
    "birth_date": "1942-05-03",
    "address": "三重県名張市鴻之台1番地",
    "phone": "0595-63-0000",
}


async def test_consultation_is_routed_referred_scheduled_and_counted(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    for name, service in stack.items():
        assert service.process is not None and service.process.pid, name
    assert len({s.process.pid for s in stack.values() if s.process}) == 4, "four separate OS processes"
    partner = bearer("nabari-shakyo", Scope.submit, Scope.read_own)
    operator = bearer("operator", Scope.operator, Scope.coordinator)

    household = [{**CONSULTATION_8050["household"][0], **PERSONAL}, CONSULTATION_8050["household"][1]]
    async with httpx.AsyncClient(base_url=stack["intake"].url, timeout=10, headers=partner) as client:
        response = await client.post("/v1/consultations", json={**CONSULTATION_8050, "household": household})
        assert response.status_code == 202, response.text
        case_id = response.json()["case_id"]
        contact = await client.post(f"/v1/cases/{case_id}/contacts", json={"pathway": "self"})
        assert contact.status_code == 202, contact.text
        consent = await client.post(
            f"/v1/cases/{case_id}/consents", json={"given_by": "self", "members": [0], "share_with": ["engaged"]}
        )
        assert consent.status_code == 201, consent.text
        revoked = await client.post(
            f"/v1/cases/{case_id}/consents/{consent.json()['id']}/revocation", json={"reason": "person_request"}
        )
        assert revoked.status_code == 200, revoked.text

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

    decision = await poll_json(f"{stack['router'].url}/v1/cases/{case_id}/decision", lambda body: True, operator)
    assert decision["tier"] == 2
    assert decision["lead"] == "nabari-houkatsu"
    assert {p["id"] for p in decision["patterns"]} == {"multiple_members", "multiple_issues"}

    timeline = await poll_json(
        f"{stack['intake'].url}/v1/cases/{case_id}",
        lambda body: body["status"] == "routed" and len(body["referrals"]) == len(ENGAGED_8050),
        partner,
    )
    assert timeline["tier"] == 2 and timeline["lead"] == "nabari-houkatsu"
    assert {r["agency_id"] for r in timeline["referrals"]} == ENGAGED_8050
    assert [c["kind"] for c in timeline["contacts"]] == ["opening", "follow_up"]
    assert timeline["consents"][0]["revoked_at"] is not None

    meetings = await poll_json(
        f"{stack['conference'].url}/v1/meetings?case_id={case_id}", lambda body: len(body) == 1, operator
    )
    assert set(meetings[0]["participants"]) == ENGAGED_8050

    report = await poll_json(
        f"{stack['metrics'].url}/v1/indicators?municipality=242080",
        lambda body: (
            indicator(body, "OPS-CASE-MEETINGS")["value"] == 1
            and indicator(body, "OPS-REFERRALS")["value"] == len(ENGAGED_8050)
            and indicator(body, "M8-全機関")["value"] == 1
            and indicator(body, "OPS-DECISIONS")["value"] == 1
        ),
        operator,
    )
    # The 社協 is a partner, not the general window: its household counts among every partner's (M8-全機関).
    assert indicator(report, "M8")["value"] == 0
    assert indicator(report, "M8-全機関")["by_dimension"] == {"family_or_community": 1}
    assert indicator(report, "OPS-DECISIONS")["by_dimension"] == {"tier2": 1}
    assert indicator(report, "OPS-REFERRALS")["value"] == 5

    await assert_no_personal_data_on_any_topic(settings, SPINE_TOPICS)


async def assert_no_personal_data_on_any_topic(settings: Settings, exercised: set[str]) -> None:
    """Every message on every topic after the run: no name, kana, birth date, address or phone."""
    records = await read_all(
        str(settings.kafka_bootstrap_servers), [settings.kafka_topic_prefix + t for t in ALL_TOPICS]
    )
    seen = dict.fromkeys(EVENT_TOPICS, 0)
    for record in records:
        name = record.topic.removeprefix(settings.kafka_topic_prefix)
        seen[name] = seen.get(name, 0) + 1
        text = record.value.decode("utf-8", errors="replace")
        # A directory names organisations, municipalities and areas, never people: its `name` is theirs.
        allowed = {"name"} if name == DIRECTORY_PUBLISHED else set()
        assert not _keys(json.loads(text)) & (PERSONAL_KEYS - allowed), f"a personal field on {record.topic}: {text}"
        for value in PERSONAL.values():
            assert value not in text, f"personal data on {record.topic}: {text}"
        assert '"age":' not in text, "events carry age bands, not ages"
    assert all(seen[t] > 0 for t in exercised), f"the run published on each of {sorted(exercised)}: {seen}"


SPINE_TOPICS = {
    topics.CONSULTATION_RECEIVED,
    topics.CONTACT_RECORDED,
    topics.CONSENT_GIVEN,
    topics.CONSENT_REVOKED,
    topics.ROUTING_DECIDED,
    topics.REFERRAL_REQUESTED,
    topics.AGENCY_FEED,
    topics.CONFERENCE_SCHEDULED,
}
PERSONAL_KEYS = {"name", "kana", "birth_date", "address", "phone"}


def _keys(document: Any) -> set[str]:
    if isinstance(document, dict):
        return set(document) | {k for v in document.values() for k in _keys(v)}
    if isinstance(document, list):
        return {k for v in document for k in _keys(v)}
    return set()
