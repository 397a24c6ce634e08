"""Conference end to end: case meetings with exactly the engaged agencies in each one's iCalendar feed,
the 推進会議 agenda built from events (in counts, naming no case), and attendance the metrics service counts."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from icalendar import Calendar

from services.cli import upgrade_databases
from services.intake import service as intake
from shared import db
from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.events import ConferenceHeld, RoutingDecided, decode
from shared.settings import Settings
from tests.conftest import read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess
from tests.e2e.test_spine import CONSULTATION_8050, ENGAGED_8050, indicator, poll_json

pytestmark = pytest.mark.e2e

DEBT = {  # nabari-14: poverty and debt; no legal support centre in the directory, so a resource gap
    "municipality_code": "242080",
    "area": "chiiki-01",
    "pathway": "self",
    "household": [{"relation": "self", "age": 45, "issues": ["poverty", "legal"]}],
}


@contextmanager
def agenda_stack(
    settings: Settings, tmp_path: Path, directory_data: dict[str, Any]
) -> Iterator[dict[str, ServiceProcess]]:
    """The four services on one directory, conference with its own credentials to fetch the indicators
    from metrics for the 推進会議 agenda."""
    directory = tmp_path / "directory.yaml"
    directory.write_text(yaml.safe_dump(directory_data, allow_unicode=True), encoding="utf-8")
    upgrade_databases(settings)
    engine = db.make_engine(settings, "intake")
    with db.transaction(engine) as session:
        # The conference service's own credentials, to fetch the indicator snapshot from metrics.
        secret = intake.issue_credential(
            session, agency_id="svc", name="conference", scopes=[Scope.operator, Scope.platform], municipalities=[]
        )
    engine.dispose()
    env = service_env(settings, MARUGOTO_DIRECTORY_FILES=json.dumps([str(directory)]))
    services = {name: ServiceProcess(name, env, tmp_path) for name in ("intake", "router", "conference", "metrics")}
    services["conference"].env.update(
        MARUGOTO_SERVICE_CLIENT_ID="svc",
        MARUGOTO_SERVICE_CLIENT_SECRET=secret,
        MARUGOTO_INTAKE_URL=services["intake"].url,
        MARUGOTO_METRICS_URL=services["metrics"].url,
    )
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        for service in services.values():
            service.stop()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["conference"] = {"promotion_meeting": {"review_after_days": 0, "reuses": "支援調整会議"}}
    with agenda_stack(settings, tmp_path, data) as services:
        yield services


def present(participant: str, kind: str = "agency", sector: str = "welfare") -> dict[str, Any]:
    return {"participant": participant, "kind": kind, "sector": sector, "attended": True}


async def test_case_meeting_agenda_and_attendance(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    conference = stack["conference"].url
    partner = bearer("nabari-shakyo", Scope.submit, Scope.read_own)
    lead = bearer("nabari-houkatsu", Scope.coordinator)
    operator = bearer("operator", Scope.operator, Scope.coordinator)
    async with httpx.AsyncClient(base_url=stack["intake"].url, headers=partner, timeout=10) as client:
        case_id = (await client.post("/v1/consultations", json=CONSULTATION_8050)).json()["case_id"]
        debt_case = (await client.post("/v1/consultations", json=DEBT)).json()["case_id"]

    # A tier-2 case gets a case meeting of exactly the engaged agencies and the lead.
    [meeting] = await poll_json(f"{conference}/v1/meetings?case_id={case_id}", lambda b: len(b) == 1, operator)
    assert set(meeting["participants"]) == ENGAGED_8050
    assert meeting["starts_at"] and not meeting["needs_attention"]
    assert "本人同意 not given" in meeting["personal_details"]
    for agency_id in sorted(ENGAGED_8050):
        async with httpx.AsyncClient(headers=bearer(agency_id, Scope.coordinator), timeout=10) as client:
            response = await client.get(f"{conference}/v1/calendars/{agency_id}.ics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
        events = [c for c in Calendar.from_ical(response.content).walk("VEVENT")]
        uids = {str(e["UID"]) for e in events}
        assert f"{meeting['id']}@marugoto" in uids, agency_id
        [mine] = [e for e in events if str(e["UID"]) == f"{meeting['id']}@marugoto"]
        # A calendar leaves the network (phones, calendar services): no case id, no other participants.
        assert mine.get("ATTENDEE") is None and case_id not in response.text, agency_id
    async with httpx.AsyncClient(headers=bearer("hoken-08", Scope.coordinator), timeout=10) as client:
        outsider = await client.get(f"{conference}/v1/calendars/hoken-08.ics")
        assert meeting["id"] not in outsider.text, "an agency not on the case is not invited"
        assert (await client.get(f"{conference}/v1/calendars/hoken-07.ics")).status_code == 403

    # Only the lead (推進員) or an operator runs the meeting, not every invitee.
    async with httpx.AsyncClient(base_url=conference, headers=bearer("hoken-07", Scope.coordinator), timeout=10) as c:
        refused = await c.post(f"/v1/meetings/{meeting['id']}/cancel", json={"reason": "not mine to cancel"})
        assert refused.status_code == 403

    # The meeting is held: attendance is published and counted by metrics (M5, M13).
    async with httpx.AsyncClient(base_url=conference, headers=lead, timeout=10) as client:
        held = await client.post(
            f"/v1/meetings/{meeting['id']}/attendance",
            json={
                "attendance": [
                    {"participant": "nabari-houkatsu", "kind": "agency", "sector": "welfare", "attended": True},
                    {"participant": "hellowork-nabari", "kind": "agency", "sector": "non_welfare", "attended": True},
                    {
                        "participant": "名張市 住宅政策室",
                        "kind": "municipal_division",
                        "sector": "non_welfare",
                        "attended": True,
                    },
                ],
                "minutes": "役割分担を確認",
            },
        )
        assert held.status_code == 200, held.text
        decided = await client.post(
            f"/v1/meetings/{meeting['id']}/decisions",
            json={
                "plan_approved": True,
                "lead_agency": "nabari-houkatsu",
                "roles": {"hoken-07": "介護"},
                "next_review": "2027-03-01",
            },
        )
        assert decided.status_code == 201, decided.text
        again = await client.post(f"/v1/meetings/{meeting['id']}/cancel", json={"reason": "too late"})
        assert again.status_code == 409

    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, ConferenceHeld),
        until=lambda rs: any(r.key == case_id.encode() for r in rs),
    )
    [held_event] = [decode(r.value, ConferenceHeld).data for r in records if r.key == case_id.encode()]
    assert len(held_event.attendance) == 3
    report = await poll_json(
        f"{stack['metrics'].url}/v1/indicators?municipality=242080",
        lambda b: indicator(b, "M13")["value"] == 1,
        operator,
    )
    assert indicator(report, "M5")["value"] == 1
    assert indicator(report, "OPS-MEETINGS-HELD")["by_dimension"] == {"case_meeting": 1}

    # The 推進会議: convened by the lead; its agenda comes from events, and speaks of cases only in counts.
    async with httpx.AsyncClient(base_url=conference, headers=lead, timeout=10) as client:
        convened = await client.post("/v1/promotion-meetings", json={"municipality_code": "242080"})
        assert convened.status_code == 201, convened.text
        promotion = convened.json()
        assert "支援調整会議" in promotion["title"]
        agenda = (await client.get(f"/v1/promotion-meetings/{promotion['id']}/agenda")).json()
    decided_ids = {
        decode(r.value, RoutingDecided).id
        for r in await read_events(
            str(settings.kafka_bootstrap_servers),
            topic_of(settings, RoutingDecided),
            until=lambda rs: len({r.key for r in rs}) >= 2,
        )
    }
    items = agenda["items"]
    network = {line["detail"]["agency_id"] for line in items["ア"]["lines"] if line["detail"]["item"] == "agency"}
    assert network >= ENGAGED_8050
    needs = {line["detail"]["item"]: line["detail"] for line in items["ウ"]["lines"]}
    new, overdue = needs["new_difficult_cases"], needs["overdue_reviews"]
    assert (new["item"], new["cases"]) == ("new_difficult_cases", 2)
    # review_after_days is 0: the case without a decision is due; the other's next review is 2027-03-01.
    assert (overdue["item"], overdue["cases"]) == ("overdue_reviews", 1)
    [_, gap] = items["エ"]["lines"]
    assert gap["detail"] == {
        "item": "resource_gap",
        "partner_type": "legal_support_center",
        "cases": 1,
        "by_area": {"chiiki-01": 1},
    }
    [snapshot] = items["オ"]["lines"]
    assert snapshot["detail"]["municipality_code"] == "242080"
    assert indicator(snapshot["detail"], "M8-全機関")["value"] == 2
    # Not an event: the line names the report it is, where it came from and when it was fetched.
    assert snapshot["source_events"] == []
    source = snapshot["source"]
    assert source["kind"] == "metrics_snapshot" and source["url"].startswith(stack["metrics"].url)
    assert source["report"]["municipality_code"] == "242080"
    assert source["report"]["fiscal_year"] == snapshot["detail"]["fiscal_year"]
    assert abs(datetime.now(UTC) - datetime.fromisoformat(source["fetched_at"])) < timedelta(minutes=5)
    # No case, nor any routing decision (keyed by its case), is named anywhere in it.
    text = json.dumps(agenda, ensure_ascii=False)
    assert [name for name in {case_id, debt_case, *decided_ids} if name in text] == []
