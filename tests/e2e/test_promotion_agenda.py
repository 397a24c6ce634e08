"""The 推進会議 agenda end to end: consultations over intake's HTTP, routed by the router, a rejection
re-routed, a case meeting held, a target set at metrics; the agenda's five items (ア)–(オ) count what
happened, and name no case."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shared.auth import Scope
from shared.directory import demo_directory_path
from shared.settings import Settings
from tests.e2e.processes import ServiceProcess
from tests.e2e.test_conference import agenda_stack
from tests.e2e.test_spine import CONSULTATION_8050, indicator, poll_json

pytestmark = pytest.mark.e2e

CODE, LEAD, NPO = "242080", "nabari-houkatsu", "nabari-hikikomori-npo"
# 制度の狭間: poverty and debt that existing services do not fit; no legal support centre here (a gap).
GAP: dict[str, Any] = {
    "municipality_code": CODE,
    "area": "chiiki-01",
    "pathway": "self",
    "existing_services_fit": False,
    "household": [{"relation": "self", "age": 45, "issues": ["poverty", "legal"]}],
}
# A neighbour's concern about someone no one has spoken with yet.
UNREACHED: dict[str, Any] = {
    "municipality_code": CODE,
    "area": "chiiki-03",
    "pathway": "family_or_community",
    "contact": "not_yet_reached",
    "household": [{"relation": "self", "age": 38, "issues": ["social_isolation"]}],
}


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """The four services on the demo directory, with a municipal ひきこもり NPO (so a rejection has
    somewhere to go), and conference's own credentials to fetch the indicators from metrics."""
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    data["agencies"].append(
        {
            "id": NPO,
            "name": "NPO ひきこもり支援 なばり",
            "type": "hikikomori_support_center",
            "scope": "municipality",
            "sector": "welfare",
        }
    )
    with agenda_stack(settings, tmp_path, data) as services:
        yield services


def lines(agenda: dict[str, Any], section: str, item: str) -> list[dict[str, Any]]:
    """The details of the lines of one kind in one item of the agenda."""
    return [line["detail"] for line in agenda["items"][section]["lines"] if line["detail"].get("item") == item]


def settled(agenda: dict[str, Any]) -> bool:
    """Conference has applied every event of the test: the three consultations, the re-route, the meeting."""
    [issues] = lines(agenda, "ウ", "issues")
    [handoffs] = lines(agenda, "イ", "handoffs")
    [held] = lines(agenda, "イ", "meetings_held")
    return bool(issues["cases"] == 3 and handoffs["handoffs"] >= 1 and held["meetings"] == 1)


async def test_the_agenda_counts_what_the_network_did(
    stack: dict[str, ServiceProcess], bearer: Callable[..., dict[str, str]]
) -> None:
    router, conference, metrics = stack["router"].url, stack["conference"].url, stack["metrics"].url
    partner = bearer("nabari-shakyo", Scope.submit, Scope.read_own)
    operator = bearer("operator", Scope.operator, Scope.coordinator)
    lead = bearer(LEAD, Scope.coordinator)
    async with httpx.AsyncClient(base_url=stack["intake"].url, headers=partner, timeout=10) as client:
        cases = {}
        for name, body in (("8050", CONSULTATION_8050), ("gap", GAP), ("unreached", UNREACHED)):
            response = await client.post("/v1/consultations", json=body)
            assert response.status_code == 202, response.text
            cases[name] = response.json()["case_id"]
    decisions = {
        name: await poll_json(f"{router}/v1/cases/{case_id}/decision", lambda body: True, operator)
        for name, case_id in cases.items()
    }
    assert [decisions[name]["tier"] for name in ("8050", "gap", "unreached")] == [2, 2, 1]

    # The NPO turns the 8050 household down: the router re-routes to the prefecture's ひきこもり centre.
    first = await poll_json(f"{router}/v1/referrals?case_id={cases['8050']}", lambda body: len(body) >= 5, operator)
    [npo_referral] = [r for r in first if r["agency_id"] == NPO]
    async with httpx.AsyncClient(base_url=router, headers=bearer(NPO, Scope.coordinator, Scope.read_own)) as client:
        rejected = await client.post(
            f"/v1/referrals/{npo_referral['id']}/transitions", json={"to": "rejected", "reason_code": "no_capacity"}
        )
        assert rejected.status_code == 200, rejected.text
    referrals = await poll_json(f"{router}/v1/referrals?case_id={cases['8050']}", lambda body: len(body) >= 6, operator)
    [reroute] = [r for r in referrals if r["replaces_referral_id"] == npo_referral["id"]]
    assert reroute["agency_id"] == "mie-hikikomori"

    # The case meeting, with the re-routed agency on it, is held; the youth support station stays away.
    [meeting] = await poll_json(
        f"{conference}/v1/meetings?case_id={cases['8050']}",
        lambda body: len(body) == 1 and "mie-hikikomori" in body[0]["participants"],
        operator,
    )
    assert NPO not in meeting["participants"]
    attendance = [
        {"participant": agency, "kind": "agency", "sector": "welfare", "attended": attended}
        for agency, attended in ((LEAD, True), ("hoken-07", True), ("mie-saposute", False))
    ]
    async with httpx.AsyncClient(base_url=conference, headers=lead, timeout=10) as client:
        held = await client.post(f"/v1/meetings/{meeting['id']}/attendance", json={"attendance": attendance})
        assert held.status_code == 200, held.text

    # A target for M8 (相談の実件数), set in advance as 実施要領 3(6) asks; metrics has counted the three.
    report = await poll_json(
        f"{metrics}/v1/indicators?municipality={CODE}",
        lambda body: indicator(body, "M8-全機関")["value"] == 3,
        operator,
    )
    async with httpx.AsyncClient(base_url=metrics, headers=operator, timeout=10) as client:
        target = await client.put(
            f"/v1/municipalities/{CODE}/fiscal-years/{report['fiscal_year']}/targets/M8-全機関",
            json={"value": 10, "reason": "年度途中に設定"},
        )
        assert target.status_code == 204, target.text

    async with httpx.AsyncClient(base_url=conference, headers=lead, timeout=10) as client:
        convened = await client.post("/v1/promotion-meetings", json={"municipality_code": CODE})
        assert convened.status_code == 201, convened.text
    agenda = await poll_json(f"{conference}/v1/promotion-meetings/{convened.json()['id']}/agenda", settled, lead)

    # (ア) The network: every agency the router engaged, and the one re-routed to. Invited to the case
    # meeting and not there: the youth support station, recorded absent, and the employment office and the
    # ひきこもり centre, not recorded at all.
    engaged = {e["agency_id"] for d in decisions.values() for e in d["engaged"]} | {"mie-hikikomori"}
    [network] = lines(agenda, "ア", "network")
    assert (network["members"], network["new_members"]) == (len(engaged), len(engaged))
    assert network["not_attending_agencies"] == ["hellowork-nabari", "mie-hikikomori", "mie-saposute"]
    parts = {d["agency_id"]: d for d in lines(agenda, "ア", "agency")}
    assert set(parts) == engaged
    assert (parts["hoken-07"]["engaged_cases"], parts["hoken-07"]["meetings_attended"]) == (1, 1)
    assert (parts["mie-saposute"]["meetings_attended"], parts["mie-saposute"]["meetings_invited"]) == (0, 1)
    assert parts[NPO]["engaged_cases"] == 0, "it turned the case down"

    # (イ) Working together: the 8050 household's agencies in pairs, the case meeting, the re-route.
    [joint] = lines(agenda, "イ", "joint_engagements")
    assert {"agencies": ["hoken-07", "mie-saposute"], "cases": 1} in joint["by_pair"]
    [held_meetings] = lines(agenda, "イ", "meetings_held")
    assert held_meetings["by_kind"] == {"case_meeting": 1, "support_meeting": 0, "plan_meeting": 0}
    [handoffs] = lines(agenda, "イ", "handoffs")
    assert handoffs["by_pair"] == [
        {"kind": "reroute", "from_agency": NPO, "to_agency": "mie-hikikomori", "handoffs": 1}
    ]

    # (ウ) The needs, by area: the tags as submitted, the household in 制度の狭間, the person not reached.
    [new] = lines(agenda, "ウ", "new_difficult_cases")
    assert (new["cases"], new["by_area"]) == (2, {"chiiki-01": 1, "chiiki-07": 1})
    [issues] = lines(agenda, "ウ", "issues")
    assert issues["by_issue"] == {
        "employment": 1,
        "hikikomori": 1,
        "legal": 1,
        "long_term_care": 1,
        "poverty": 1,
        "social_isolation": 1,
    }
    assert issues["by_area"]["chiiki-03"] == {"cases": 1, "by_issue": {"social_isolation": 1}}
    assert lines(agenda, "ウ", "services_gap") == [{"item": "services_gap", "cases": 1, "by_area": {"chiiki-01": 1}}]
    assert lines(agenda, "ウ", "not_yet_reached") == [
        {"item": "not_yet_reached", "cases": 1, "by_area": {"chiiki-03": 1}}
    ]

    # (エ) The legal support centre this directory lacks, for the household of 地域01.
    assert lines(agenda, "エ", "resource_gap") == [
        {"item": "resource_gap", "partner_type": "legal_support_center", "cases": 1, "by_area": {"chiiki-01": 1}}
    ]

    # (オ) M8 against its target, from the metrics service's own report.
    [m8] = lines(agenda, "オ", "indicator")
    assert (m8["id"], m8["value"], m8["target"], m8["attainment"]) == ("M8-全機関", 3, 10, 30.0)

    # No case, nor a referral or routing decision of one, is named anywhere in it.
    text = json.dumps(agenda, ensure_ascii=False)
    named = {*cases.values(), *(r["id"] for r in referrals), *(d["id"] for d in decisions.values())}
    assert [name for name in named if name in text] == []
