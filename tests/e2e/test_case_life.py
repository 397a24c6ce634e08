"""The life of a case after routing, end to end through the four services as processes and the broker:
new facts at a third contact re-route the case; a 支援プラン is drafted, approved with consent at a
重層的支援会議, monitored on a shortened business-day clock whose timers survive a router restart, evaluated,
revised and ended (終結) with a 主担当 and 見守り; a new contact reopens it; a 転居 moves a case to another
municipality of the deployment, its personal details only with a consent that covers it; metrics counts
it all."""

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.events import CaseLifeChanged, CaseTransferred, MonitoringDue, RoutingDecided, decode
from shared.settings import Settings
from tests.conftest import read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_spine import indicator, poll_json

pytestmark = pytest.mark.e2e

TOWN, OTHER_TOWN = "242080", "242098"
LEAD = "nabari-houkatsu"
# One business day is 8.75 opening hours: 0.4 s an hour makes it 3.5 s.
BUSINESS_HOUR_S = 0.4
HOUSEHOLD = {  # a father out of work, a son who stays at home: tier 2 in 地域05
    "municipality_code": TOWN,
    "area": "chiiki-05",
    "pathway": "self",
    "household": [
        {"relation": "self", "age": 58, "issues": ["poverty", "employment"], "name": "名張 太郎"},
        {"relation": "child", "age": 24, "issues": ["hikikomori"]},
    ],
}


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """Two municipalities of one deployment (名張市 and a neighbour with the same agencies), referral
    deadlines far away and monitoring overdue one business day after its reminder."""
    files = []
    for code, name in ((TOWN, "名張市"), (OTHER_TOWN, "隣町")):
        data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
        data["municipality"]["code"], data["municipality"]["name"] = code, name
        data["routing"] = {
            "reminder_after_business_hours": 10_000,
            "escalate_after_business_hours": 20_000,
            "monitoring_overdue_after_business_days": 1,
        }
        data["conference"] = {"promotion_meeting": {"cadence": "on_demand"}}
        path = tmp_path / f"directory-{code}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        files.append(str(path))
    upgrade_databases(settings)
    env = service_env(
        settings,
        MARUGOTO_DIRECTORY_FILES=json.dumps(files),
        MARUGOTO_ROUTER_WALL_CLOCK="true",
        MARUGOTO_ROUTER_BUSINESS_HOUR_S=str(BUSINESS_HOUR_S),
        MARUGOTO_ROUTER_TIMER_INTERVAL_S="0.2",
    )
    with running(("intake", "router", "conference", "metrics"), env, tmp_path) as services:
        yield services


class Api:
    """One credential calling the services."""

    def __init__(self, stack: dict[str, ServiceProcess], headers: dict[str, str]) -> None:
        self.urls = {name: service.url for name, service in stack.items()}
        self.headers = headers

    async def call(self, method: str, service: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with httpx.AsyncClient(base_url=self.urls[service], headers=self.headers, timeout=10) as client:
            response = await client.request(method, path, json=body)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def until(self, service: str, path: str, done: Callable[[Any], bool]) -> Any:
        return await poll_json(f"{self.urls[service]}{path}", done, self.headers)


async def retry_post(api: Api, service: str, path: str, body: Any, expect: int = 201) -> Any:
    """POST until the service has caught up with the events the call depends on."""
    async with httpx.AsyncClient(base_url=api.urls[service], headers=api.headers, timeout=10) as client:
        for _ in range(100):
            response = await client.post(path, json=body)
            if response.status_code == expect:
                return response.json()
            await asyncio.sleep(0.3)
    raise AssertionError(f"POST {path}: {response.status_code} {response.text}")


async def hold_with_decision(lead: Api, case_id: str, decisions: list[dict[str, Any]]) -> None:
    """Convene a 重層的支援会議 about the case, hold it and record the decisions."""
    meeting = await retry_post(lead, "conference", "/v1/plan-meetings", {"case_id": case_id})
    path = f"/v1/meetings/{meeting['id']}"
    present = [{"participant": LEAD, "kind": "agency", "sector": "welfare", "attended": True}]
    await lead.call("POST", "conference", f"{path}/attendance", {"attendance": present})
    for decision in decisions:
        await lead.call("POST", "conference", f"{path}/decisions", decision, expect=201)


def events_of(records: list[Any], model: Any, case_id: str) -> list[Any]:
    return [decode(r.value, model).data for r in records if r.key == case_id.encode()]


async def test_a_case_is_reassessed_planned_monitored_ended_and_reopened(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    partner = Api(stack, bearer("nabari-shakyo", Scope.submit, Scope.read_own))
    lead = Api(stack, bearer(LEAD, Scope.coordinator, Scope.read_own))
    operator = Api(stack, bearer("operator", Scope.operator, Scope.coordinator))
    case_id = (await partner.call("POST", "intake", "/v1/consultations", HOUSEHOLD, expect=202))["case_id"]
    first = await operator.until("router", f"/v1/cases/{case_id}/decision", lambda body: True)
    assert first["tier"] == 2
    engaged_before = {e["agency_id"] for e in first["engaged"]}

    # Done-when 1: the second contact brings nothing new; the third a grandmother with a 難病 (a
    # prefecture category): a new version at tier 3 with the prefecture's centre, nothing dropped.
    contacts = f"/v1/cases/{case_id}/contacts"
    await partner.call("POST", "intake", contacts, {"pathway": "self"}, expect=202)
    grandmother = {"relation": "grandparent", "age": 86, "issues": ["intractable_disease"]}
    await partner.call("POST", "intake", contacts, {"pathway": "self", "members": [grandmother]}, expect=202)
    history = await operator.until("router", f"/v1/cases/{case_id}/decisions", lambda body: len(body) >= 2)
    assert len(history) == 2, "a contact with no new facts makes no new version"
    second = history[-1]
    assert (second["kind"], second["sequence"], second["tier"]) == ("reassessment", 2, 3)
    engaged_after = {e["agency_id"] for e in second["engaged"]}
    assert engaged_after > engaged_before and "mie-nanbyo" in engaged_after
    assert second["changes"]["tier_from"] == 2 and "mie-nanbyo" in second["changes"]["added_agencies"]
    await operator.until(
        "router", f"/v1/referrals?case_id={case_id}", lambda b: "mie-nanbyo" in {r["agency_id"] for r in b}
    )

    # Done-when 2: consent, a plan drafted by the lead (pre-filled from the case), approved at a
    # 重層的支援会議 (the 支援決定), monitored every business day.
    consent = {"given_by": "self", "members": [0, 1, 2], "share_with": ["engaged"], "purpose": "支援プランの作成"}
    await partner.call("POST", "intake", f"/v1/cases/{case_id}/consents", consent, expect=201)
    draft = {"goals": ["就労の再開", "通院の継続"], "main_agency": "nabari-jiritsu", "monitoring_interval_days": 1}
    plan = await retry_post(lead, "conference", f"/v1/cases/{case_id}/plans", draft)
    assert plan["version"] == 1 and plan["status"] == "drafted"
    assert set(plan["roles"]) >= engaged_after - {LEAD}, "roles pre-filled from the engaged agencies"
    support = {"type": "support_decision", "lead_agency": LEAD, "next_review": "2027-03-01", "plan_version": 1}
    await hold_with_decision(lead, case_id, [support])
    plans = await lead.until("conference", f"/v1/cases/{case_id}/plans", lambda b: b[0]["status"] == "approved")
    assert [p["status"] for p in plans] == ["approved"]

    # The router holds the monitoring timers; it restarts before the first is due, and they still fire.
    await asyncio.sleep(0.5)
    stack["router"].stop()
    stack["router"].start()
    stack["router"].wait_ready()
    bootstrap = str(settings.kafka_bootstrap_servers)
    due = await read_events(
        bootstrap,
        topic_of(settings, MonitoringDue),
        until=lambda rs: {d.stage for d in events_of(rs, MonitoringDue, case_id)} == {"reminder", "overdue"},
        timeout_s=60,
    )
    stages = {d.stage: d for d in events_of(due, MonitoringDue, case_id)}
    assert stages["reminder"].main_agency == "nabari-jiritsu" and stages["overdue"].lead == LEAD
    feed = await lead.until(
        "router",
        "/v1/feed/entries?limit=500",
        lambda b: any(e["kind"] == "monitoring_overdue" and e["case_id"] == case_id for e in b["entries"]),
    )
    assert feed["entries"]

    # Monitored and evaluated by the 主担当, revised to version 2, approved, and coordination ended with
    # the 主担当 accompanying and 見守り.
    main = Api(stack, bearer("nabari-jiritsu", Scope.coordinator, Scope.read_own))
    for kind in ("monitoring", "evaluation"):
        await main.call(
            "POST", "conference", f"/v1/cases/{case_id}/plans/1/monitorings", {"kind": kind, "note": "面談"}, expect=201
        )
    revised = {"goals": ["就労の再開", "祖母の通院支援"], "reason": "evaluation"}
    assert (await lead.call("POST", "conference", f"/v1/cases/{case_id}/plans", revised, expect=201))["version"] == 2
    closure = {
        "type": "closure",
        "closure_reason": "goals_met",
        "lead_agency": "nabari-jiritsu",
        "watch": True,
        "next_review": "2027-06-01",
    }
    await hold_with_decision(lead, case_id, [{**support, "plan_version": 2}, closure])
    plans = await lead.until("conference", f"/v1/cases/{case_id}/plans", lambda b: b[-1]["status"] == "approved")
    assert [p["status"] for p in plans] == ["superseded", "approved"]

    # A new contact on the ended case reopens it: the same case, one 実件数.
    await partner.call("POST", "intake", contacts, {"pathway": "self"}, expect=202)
    life = await read_events(
        bootstrap,
        topic_of(settings, CaseLifeChanged),
        until=lambda rs: [e.state for e in events_of(rs, CaseLifeChanged, case_id)] == ["watching", "reopened"],
        timeout_s=30,
    )
    watching, reopened = events_of(life, CaseLifeChanged, case_id)
    assert (watching.reason, watching.main_agency) == ("goals_met", "nabari-jiritsu") and reopened.state == "reopened"

    # Done-when 5: the indicators, in the API and the export.
    report = await operator.until(
        "metrics",
        f"/v1/indicators?municipality={TOWN}",
        lambda b: indicator(b, "JUSO-SUPPORT-DECISIONS")["value"] == 2 and indicator(b, "CASES-ENDED")["value"] == 1,
    )
    assert indicator(report, "M8-全機関")["value"] == 1, "reopened, not a new case"
    assert indicator(report, "JUSO-EVALUATIONS-ON-TIME")["value"] == 100
    async with httpx.AsyncClient(headers=operator.headers, timeout=10) as client:
        exported = await client.get(f"{stack['metrics'].url}/v1/indicators/export.csv?municipality={TOWN}")
    assert exported.status_code == 200
    assert all(i in exported.text for i in ("JUSO-SUPPORT-DECISIONS", "CASES-ENDED", "CASES-WATCHING"))


async def test_a_transfer_routes_the_case_under_the_receiving_directory(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    """Done-when 3: one household moves with a consent that covers the receiving municipality, another
    without; each is routed there under that municipality's directory, personal details crossing only
    with the consent."""
    both = (TOWN, OTHER_TOWN)
    partner = Api(stack, bearer("nabari-shakyo", Scope.submit, Scope.read_own, municipalities=both))
    lead = Api(stack, bearer(LEAD, Scope.coordinator, municipalities=both))
    operator = Api(stack, bearer("operator", Scope.operator, Scope.coordinator, Scope.read_own, municipalities=both))
    moved = {}
    for covered in (True, False):
        case_id = (await partner.call("POST", "intake", "/v1/consultations", HOUSEHOLD, expect=202))["case_id"]
        consent = {
            "given_by": "self",
            "members": [0],
            "share_with": ["engaged"],
            "purpose": "転居先への引継ぎ",
            "municipalities": [OTHER_TOWN] if covered else [],
        }
        await partner.call("POST", "intake", f"/v1/cases/{case_id}/consents", consent, expect=201)
        await operator.until("router", f"/v1/cases/{case_id}/decision", lambda body: True)
        body = {"to_municipality_code": OTHER_TOWN, "to_area": "chiiki-02", "reason": "moved"}
        transfer = await lead.call("POST", "intake", f"/v1/cases/{case_id}/transfers", body, expect=201)
        moved[covered] = (case_id, transfer)

    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, CaseTransferred),
        until=lambda rs: all(events_of(rs, CaseTransferred, c) for c, _ in moved.values()),
    )
    routed = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, RoutingDecided),
        until=lambda rs: all(
            any(r.key == events_of(records, CaseTransferred, c)[0].to_case_id.encode() for r in rs)
            for c, _ in moved.values()
        ),
    )
    for covered, (case_id, _) in moved.items():
        [event] = events_of(records, CaseTransferred, case_id)
        assert (event.from_municipality, event.to_municipality) == (TOWN, OTHER_TOWN)
        assert event.personal_details_copied is covered
        assert event.to_case_id is not None
        [decided] = [r for r in routed if r.key == event.to_case_id.encode()]
        envelope = json.loads(decided.value)
        assert envelope["municipalitycode"] == OTHER_TOWN, "routed under the receiving municipality"
        decision = await operator.until("router", f"/v1/cases/{event.to_case_id}/decision", lambda body: True)
        assert (
            decision["directory_version"]
            != (await operator.until("router", f"/v1/cases/{case_id}/decision", lambda body: True))["directory_version"]
        ), "the receiving municipality's own directory"
        # Both sides keep the link.
        old = await operator.call("GET", "intake", f"/v1/cases/{case_id}")
        new = await operator.call("GET", "intake", f"/v1/cases/{event.to_case_id}")
        assert (old["transferred_to"]["municipality_code"], old["transferred_to"]["case_id"]) == (
            OTHER_TOWN,
            event.to_case_id,
        )
        assert new["transferred_from"] is not None
        # The copy of personal details is a release on the ledger, on the consent that covers it.
        ledger = await operator.call("GET", "intake", f"/v1/cases/{case_id}/disclosures")
        crossed = [
            (r["basis"], r["outcome"])
            for r in ledger
            if r["channel"] == "personal_details" and r["recipient"] == f"municipality:{OTHER_TOWN}"
        ]
        assert crossed == ([("consent", "released")] if covered else []), crossed
    report = await operator.until(
        "metrics", f"/v1/indicators?municipality={OTHER_TOWN}", lambda b: indicator(b, "OPS-TRANSFERS-IN")["value"] == 2
    )
    assert indicator(report, "OPS-TRANSFERS-IN")["value"] == 2
