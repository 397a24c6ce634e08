"""The router end to end: published decisions, re-routing on rejection, deadlines that survive a kill,
escalations on request, and coordinators' feeds (SSE) that resume without gaps."""

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlmodel import select

from services.cli import upgrade_databases
from services.router.models import Referral, Timer
from services.router.scenarios import load_scenario_file
from shared import db, topics
from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.events import ReferralOverdue, RoutingDecided, decode
from shared.settings import Settings
from tests.conftest import read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_spine import CONSULTATION_8050, assert_no_personal_data_on_any_topic, poll_json
from tests.router.scenario_files import NABARI

pytestmark = pytest.mark.e2e

# Deadlines in business hours; one business hour lasts one second of wall clock in this test.
REMINDER_AFTER, ESCALATE_AFTER = 6, 9
# The escalation must still be seconds away when the router is killed (its referral is about 1 s old then).
KILL_MARGIN_S = 3.0


@pytest.fixture
def directory_file(tmp_path: Path) -> Path:
    """The demo directory, with a municipal ひきこもり NPO (so a rejection has somewhere to go) and short deadlines."""
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["agencies"].append(
        {
            "id": "nabari-hikikomori-npo",
            "name": "NPO ひきこもり支援 なばり",
            "type": "hikikomori_support_center",
            "scope": "municipality",
            "sector": "welfare",
        }
    )
    data["routing"] = {
        "reminder_after_business_hours": REMINDER_AFTER,
        "escalate_after_business_hours": ESCALATE_AFTER,
    }
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def stack(settings: Settings, directory_file: Path, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    upgrade_databases(settings, ["intake", "router"])
    env = service_env(
        settings,
        MARUGOTO_DIRECTORY_FILES=json.dumps([str(directory_file)]),
        MARUGOTO_ROUTER_WALL_CLOCK="true",
        MARUGOTO_ROUTER_BUSINESS_HOUR_S="1",
        MARUGOTO_ROUTER_TIMER_INTERVAL_S="0.2",
    )
    with running(("intake", "router"), env, tmp_path) as services:
        yield services


class Actor:
    """An agency (or operator) calling a service over HTTP with its own token."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10)

    async def get(self, path: str) -> Any:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def move(self, referral_id: str, to: str, reason: str | None = None) -> httpx.Response:
        return await self.client.post(
            f"/v1/referrals/{referral_id}/transitions", json={"to": to, "reason_code": reason}
        )


def has_key(key: bytes) -> Callable[[list[Any]], bool]:
    return lambda records: any(r.key == key for r in records)


async def submit(intake_url: str, headers: dict[str, str], body: dict[str, Any]) -> str:
    async with httpx.AsyncClient(base_url=intake_url, headers=headers, timeout=10) as client:
        response = await client.post("/v1/consultations", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["case_id"])


async def referrals(router: ServiceProcess, operator: dict[str, str], case_id: str, count: int) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await poll_json(
        f"{router.url}/v1/referrals?case_id={case_id}", lambda body: len(body) >= count, operator
    )
    return result


async def test_router_end_to_end(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    router = stack["router"]
    partner = bearer("nabari-shakyo", Scope.submit, Scope.read_own)
    operator = bearer("operator", Scope.operator, Scope.coordinator)

    def agency(agency_id: str) -> Actor:
        return Actor(router.url, bearer(agency_id, Scope.coordinator, Scope.read_own))

    # 1. Two households of the shared scenarios, through intake: the published decisions match.
    scenarios = {s.id: s for s in load_scenario_file(NABARI).scenarios}
    for scenario_id in ("nabari-02-8050", "nabari-08-dv-confidential"):
        scenario = scenarios[scenario_id]
        body = {"municipality_code": "242080", **scenario.consultation.model_dump(mode="json")}
        case_id = await submit(stack["intake"].url, partner, body)
        records = await read_events(
            str(settings.kafka_bootstrap_servers),
            topic_of(settings, RoutingDecided),
            until=has_key(case_id.encode()),
        )
        [decided] = [decode(r.value, RoutingDecided).data for r in records if r.key == case_id.encode()]
        expect = scenario.expect
        assert decided.tier == expect.tier and set(decided.patterns) == set(expect.patterns or [])
        assert decided.lead == expect.lead
        engaged = {e.agency_id for e in decided.engaged}
        assert set(expect.engaged_include or []) - {"mie-hikikomori"} <= engaged
        assert not set(expect.engaged_exclude or []) & engaged
        if scenario_id == "nabari-08-dv-confidential":
            for place in ("hoken-01", "hoken-02", "hoken-03"):
                page = await agency(place).get("/v1/feed/entries")
                assert case_id not in {e["case_id"] for e in page["entries"]}, "confidential: not on a tier-1 feed"

    # 2. A rejection re-routes to the next agency of the same type, within the run.
    case_id = await submit(stack["intake"].url, partner, CONSULTATION_8050)
    first = await referrals(router, operator, case_id, 5)
    by_agency = {r["agency_id"]: r for r in first}
    npo = agency("nabari-hikikomori-npo")
    assert (await npo.move(by_agency["nabari-hikikomori-npo"]["id"], "rejected")).status_code == 422, "reason needed"
    rejected = await npo.move(by_agency["nabari-hikikomori-npo"]["id"], "rejected", "no_capacity")
    assert rejected.status_code == 200, rejected.text
    again = await npo.move(by_agency["nabari-hikikomori-npo"]["id"], "accepted")
    assert again.status_code == 409 and again.json()["type"].endswith("/illegal-transition")
    after = await referrals(router, operator, case_id, 6)
    [rerouted] = [r for r in after if r["replaces_referral_id"] == by_agency["nabari-hikikomori-npo"]["id"]]
    assert rerouted["agency_id"] == "mie-hikikomori" and rerouted["rule_id"] == "reroute"
    prefecture_feed = await agency("mie-hikikomori").get("/v1/feed/entries")
    assert rerouted["id"] in {e["referral_id"] for e in prefecture_feed["entries"]}
    # Others take theirs; the employment office leaves its referral unanswered.
    for agency_id in ("nabari-houkatsu", "hoken-07", "mie-saposute"):
        assert (await agency(agency_id).move(by_agency[agency_id]["id"], "accepted")).status_code == 200
    assert (await agency("mie-hikikomori").move(rerouted["id"], "accepted")).status_code == 200
    assert (await agency("hoken-07").move(by_agency["hellowork-nabari"]["id"], "accepted")).status_code == 403

    # The silent office is engaged: intake lets it read the case.
    office_at_intake = bearer("hellowork-nabari", Scope.read_own)
    async with httpx.AsyncClient(base_url=stack["intake"].url, headers=office_at_intake, timeout=10) as client:
        assert (await client.get(f"/v1/cases/{case_id}")).status_code == 200

    # 3. Kill the router before the deadline passes; after the restart the persisted timers still fire.
    unanswered = by_agency["hellowork-nabari"]["id"]
    router.kill()
    killed_at = datetime.now(UTC)
    # With the router dead nothing can fire it any more, so the database shows the state at the kill.
    escalation, taken_over = router_state(settings, unanswered)
    assert escalation.fired_at is None and taken_over == [], "escalated before the kill: the restart proves nothing"
    assert escalation.due_at - killed_at >= timedelta(seconds=KILL_MARGIN_S), (
        f"the deadline is only {(escalation.due_at - killed_at).total_seconds():.1f} s after the kill; "
        "raise ESCALATE_AFTER so that the timer is certainly still pending when the router dies"
    )
    # The deadline passes while the router is down (a known moment, read from the timer row).
    await asyncio.sleep((escalation.due_at - datetime.now(UTC)).total_seconds() + 0.5)
    router.start()
    router.wait_ready()
    escalated = await referrals(router, operator, case_id, 7)
    escalation, taken_over = router_state(settings, unanswered)
    assert escalation.fired_at is not None and escalation.fired_at > killed_at, "fired by the restarted router"
    assert [(r.agency_id, r.rule_id) for r in taken_over] == [("nabari-houkatsu", "escalation")]
    [to_lead] = [r for r in escalated if r["replaces_referral_id"] == by_agency["hellowork-nabari"]["id"]]
    assert to_lead["agency_id"] == "nabari-houkatsu" and to_lead["rule_id"] == "escalation"
    # The lead took the work over: the silent office's referral is closed, and its access with it.
    [superseded] = [r for r in escalated if r["id"] == unanswered]
    assert (superseded["status"], superseded["status_reason"]) == ("cancelled", "superseded")
    office = agency("hellowork-nabari")
    assert (await office.client.get(f"/v1/cases/{case_id}/decision")).status_code == 404
    # Intake learns of the closed referral from its status change: the case is then as unknown to the office.
    async with httpx.AsyncClient(base_url=stack["intake"].url, headers=office_at_intake, timeout=10) as client:
        deadline = asyncio.get_running_loop().time() + 30
        while (read := await client.get(f"/v1/cases/{case_id}")).status_code == 200:
            assert asyncio.get_running_loop().time() < deadline, "the office still reads the case"
            await asyncio.sleep(0.2)
        assert read.status_code == 404 and read.json()["type"].endswith("/case-not-found")
    office_feed = (await office.get("/v1/feed/entries"))["entries"]
    assert [(e["kind"], e["body"]["status"]) for e in office_feed if e["referral_id"] == unanswered][-1] == (
        "status_changed",
        "cancelled",
    )
    # Each partner's feed names only the tags it was engaged for; the lead's the whole household.
    issues = {
        agency_id: {tuple(e["body"]["issues"]) for e in (await agency(agency_id).get("/v1/feed/entries"))["entries"]}
        for agency_id in ("hoken-07", "nabari-houkatsu")
    }
    assert ("long_term_care",) in issues["hoken-07"] and len(issues["hoken-07"]) == 1
    assert ("employment", "hikikomori", "long_term_care") in issues["nabari-houkatsu"]
    overdue = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, ReferralOverdue),
        until=lambda rs: (
            {decode(r.value, ReferralOverdue).data.stage for r in rs if r.key == case_id.encode()}
            >= {"reminder", "escalation"}
        ),
    )
    stages = [decode(r.value, ReferralOverdue).data for r in overdue if r.key == case_id.encode()]
    assert {(o.agency_id, o.stage) for o in stages} == {
        ("hellowork-nabari", "reminder"),
        ("hellowork-nabari", "escalation"),
    }, "only the unanswered referral is chased"

    # 4. Escalations on request, each a new decision.
    lead = agency("nabari-houkatsu")
    response = await lead.client.post(f"/v1/cases/{case_id}/escalations", json={"kind": "prefecture_support"})
    assert response.status_code == 201, response.text
    assert response.json()["tier"] == 3 and response.json()["sequence"] == 2
    response = await lead.client.post(f"/v1/cases/{case_id}/escalations", json={"kind": "return_to_community"})
    assert response.status_code == 201 and response.json()["tier"] == 1 and response.json()["sequence"] == 3
    assert {e["agency_id"] for e in response.json()["engaged"]} == {"hoken-07"}
    decisions = await lead.get(f"/v1/cases/{case_id}/decisions")
    assert [d["kind"] for d in decisions] == ["initial", "prefecture_support", "return_to_community"]
    forbidden = await agency("hoken-07").client.post(
        f"/v1/cases/{case_id}/escalations", json={"kind": "prefecture_support"}
    )
    assert forbidden.status_code == 403

    single = {**CONSULTATION_8050, "area": "chiiki-04", "household": [CONSULTATION_8050["household"][0]]}
    tier1_case = await submit(stack["intake"].url, partner, single)
    [place_referral] = await referrals(router, operator, tier1_case, 1)
    assert place_referral["agency_id"] == "hoken-04" and place_referral["tier"] == 1
    backup = await agency("hoken-04").client.post(f"/v1/cases/{tier1_case}/escalations", json={"kind": "backup"})
    assert backup.status_code == 201, backup.text
    assert backup.json()["tier"] == 2 and backup.json()["lead"] == "nabari-houkatsu"

    # 5. The SSE feed resumes after a disconnect with nothing lost, repeated, or of other agencies.
    await assert_feed_resumes(router.url, bearer("nabari-houkatsu", Scope.coordinator), router, operator)

    await assert_no_personal_data_on_any_topic(
        settings, {topics.REFERRAL_STATUS_CHANGED, topics.REFERRAL_OVERDUE, topics.AGENCY_FEED}
    )


def router_state(settings: Settings, referral_id: str) -> tuple[Timer, list[Referral]]:
    """A referral's escalation timer and the referrals that replace it, read from the router's database."""
    engine = db.make_engine(settings, "router")
    try:
        with db.transaction(engine) as session:
            [timer] = session.exec(select(Timer).where(Timer.referral_id == referral_id, Timer.kind == "escalation"))
            replacing = session.exec(select(Referral).where(Referral.replaces_referral_id == referral_id))
            return timer, list(replacing)
    finally:
        engine.dispose()


async def read_sse(url: str, headers: dict[str, str], count: int) -> list[tuple[int, dict[str, Any]]]:
    """Read `count` events of an SSE stream, then hang up."""
    events: list[tuple[int, dict[str, Any]]] = []
    async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id, data = None, None
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event_id is not None and data is not None:
                events.append((event_id, data))
                event_id, data = None, None
                if len(events) == count:
                    break
    return events


async def assert_feed_resumes(
    url: str, headers: dict[str, str], router: ServiceProcess, operator: dict[str, str]
) -> None:
    everything = (await Actor(url, headers).get("/v1/feed/entries?limit=500"))["entries"]
    assert len(everything) >= 4
    half = len(everything) // 2
    first = await read_sse(f"{url}/v1/feed", headers, half)
    resumed = await read_sse(f"{url}/v1/feed", {**headers, "Last-Event-ID": str(first[-1][0])}, len(everything) - half)
    ids = [event_id for event_id, _ in first + resumed]
    assert ids == [e["id"] for e in everything], "no gap and no duplicate across the reconnect"
    own = {r["id"] for r in await Actor(url, operator).get("/v1/referrals?agency_id=nabari-houkatsu")}
    assert {data["referral_id"] for _, data in first + resumed} <= own, "only the agency's own referrals"
    other = await Actor(url, headers).client.get("/v1/feed/entries?agency_id=mie-hikikomori")
    assert other.status_code == 403
