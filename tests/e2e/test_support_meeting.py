"""A 支援会議 end to end, through the services as processes and the broker: the municipality names its
roster at intake, conference learns it from the roster topic, and a 支援会議 about a household that has
not consented, its person not yet reached, goes to current members only; each invitation read back from
Kafka, each release and refusal found in intake's disclosure ledger."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.auth import Scope
from shared.calendar import JST
from shared.events import MeetingInvitation, decode
from shared.settings import Settings
from tests.conftest import read_events, topic_of
from tests.e2e.processes import ServiceProcess
from tests.e2e.test_spine import CONSULTATION_8050, ENGAGED_8050, poll_json, stack

__all__ = ["stack"]  # the fixture, shared with test_spine

pytestmark = pytest.mark.e2e

TOWN = "242080"
LEAD = "nabari-houkatsu"
MEMBERS = (LEAD, "hoken-07", "nabari-shakyo")  # nabari-shakyo is not engaged on the case: a member all the same
ENGAGED_NOT_MEMBER = "mie-hikikomori"


async def convene(client: httpx.AsyncClient, body: dict[str, Any], timeout_s: float = 30.0) -> httpx.Response:
    """POST the 支援会議, again while conference has not yet read the roster from its topic."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await client.post("/v1/support-meetings", json=body)
        not_yet = response.status_code == 422 and response.json()["type"].endswith("/not-on-roster")
        if not not_yet or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.3)


async def test_a_support_meeting_reaches_current_roster_members_only(
    stack: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    roster_since = (datetime.now(JST).date() - timedelta(days=30)).isoformat()
    intake, conference = stack["intake"].url, stack["conference"].url
    operator = bearer("operator", Scope.operator, municipalities=(TOWN,))
    async with httpx.AsyncClient(base_url=intake, timeout=10) as client:
        submitted = await client.post(
            "/v1/consultations",
            json={**CONSULTATION_8050, "contact": "not_yet_reached"},
            headers=bearer("hoken-07", Scope.submit, Scope.read_own),
        )
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]
        admin = bearer("nabari-admin", Scope.admin, municipalities=(TOWN,))
        for agency in MEMBERS:
            entry = await client.put(
                f"/v1/municipalities/{TOWN}/support-meeting-roster/{agency}",
                json={"member_from": roster_since, "confidentiality_acknowledged": True},
                headers=admin,
            )
            assert entry.status_code == 200, entry.text
    assert ENGAGED_NOT_MEMBER in ENGAGED_8050

    # Conference has followed the case once its case meeting (engagement basis) is there.
    await poll_json(f"{conference}/v1/meetings?case_id={case_id}", lambda b: len(b) == 1, operator)
    lead = bearer(LEAD, Scope.coordinator, municipalities=(TOWN,))
    async with httpx.AsyncClient(base_url=conference, headers=lead, timeout=10) as client:
        members_only = {"case_id": case_id, "invitees": ["hoken-07", "nabari-shakyo"]}
        created = await convene(client, members_only)
        assert created.status_code == 201, created.text
        refused = await client.post(
            "/v1/support-meetings", json={"case_id": case_id, "invitees": ["hoken-07", ENGAGED_NOT_MEMBER]}
        )
        assert refused.status_code == 422 and refused.json()["agencies"] == [ENGAGED_NOT_MEMBER], refused.text
    meeting = created.json()
    assert meeting["participants"] == sorted(MEMBERS)
    assert "本人未接触" in meeting["personal_details"]

    # The invitations on Kafka: one to each member, none to anyone else.
    records = await read_events(
        str(settings.kafka_bootstrap_servers),
        topic_of(settings, MeetingInvitation),
        until=lambda rs: sum(meeting["id"].encode() in r.value for r in rs) >= len(MEMBERS),
    )
    sent = [decode(r.value, MeetingInvitation).data for r in records]
    invited = sorted(i.agency_id for i in sent if i.meeting_id == meeting["id"])
    assert invited == sorted(MEMBERS)

    # An agency engaged on the case but not a member hears of no such meeting; a member reads it.
    path = f"{conference}/v1/meetings/{meeting['id']}"
    async with httpx.AsyncClient(timeout=10) as client:
        outsider = await client.get(path, headers=bearer(ENGAGED_NOT_MEMBER, Scope.coordinator))
        assert outsider.status_code == 404 and outsider.json()["type"].endswith("/meeting-not-found")
        member = await client.get(path, headers=bearer("nabari-shakyo", Scope.coordinator))
        assert member.status_code == 200

    # Intake's ledger holds each release on the member's roster entry, and the refusal.
    def complete(rows: list[dict[str, Any]]) -> bool:
        # Both reads are on the ledger: the outsider's refusal and the member's release (they arrive through
        # conference's events, in either order).
        reads = {(r["recipient"], r["outcome"]) for r in rows if r["channel"] == "meeting_record"}
        return (ENGAGED_NOT_MEMBER, "refused") in reads and ("nabari-shakyo", "released") in reads

    rows = await poll_json(f"{intake}/v1/cases/{case_id}/disclosures", complete, operator)
    invitations = {
        r["recipient"]: r["basis_ref"]
        for r in rows
        if r["channel"] == "meeting_invitation" and r["basis"] == "support_meeting"
    }
    assert invitations == {agency: f"support_meeting:{TOWN}:{agency}:{roster_since}" for agency in MEMBERS}
    reads = [(r["recipient"], r["basis"], r["outcome"]) for r in rows if r["channel"] == "meeting_record"]
    assert ("nabari-shakyo", "support_meeting", "released") in reads
    assert (ENGAGED_NOT_MEMBER, "none", "refused") in reads
    assert not [r for r in rows if r["recipient"] == ENGAGED_NOT_MEMBER and r["basis"] == "support_meeting"]
