"""訂正 end to end (issue 26, done-when 3), through intake and the router as processes and the broker: a
correction of an address reaches, as an event keyed by the agency, the partner that had read it; the
partner's feed tells it, and its next read returns the new address, on the ledger. No value on any topic."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.events import PersonalDetailsCorrected, decode
from shared.settings import Settings
from shared.topics import ALL_TOPICS
from tests.conftest import read_all, read_events, service_env, topic_of
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_spine import CONSULTATION_8050, poll_json
from tests.intake.conftest import with_person

pytestmark = pytest.mark.e2e

TOWN = "242080"
LEAD = "nabari-houkatsu"
SUBMITTER = "nabari-shakyo"
PARTNER = "mie-hikikomori"  # engaged on the 8050 household, not its owner
OLD_ADDRESS = "名張市桔梗が丘7番町1-2-3"
NEW_ADDRESS = "名張市つつじが丘北5番町4-5"


@pytest.fixture
def intake_and_router(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    upgrade_databases(settings, ["intake", "router"])
    with running(("intake", "router"), service_env(settings), tmp_path) as services:
        yield services


def feed_kinds(body: dict[str, Any], case_id: str) -> list[str]:
    return [entry["kind"] for entry in body["entries"] if entry["case_id"] == case_id]


async def test_a_corrected_address_reaches_the_partner_that_read_it(
    intake_and_router: dict[str, ServiceProcess], settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    intake, router = intake_and_router["intake"].url, intake_and_router["router"].url
    submitter = bearer(SUBMITTER, Scope.submit, Scope.read_own, municipalities=(TOWN,))
    partner = bearer(PARTNER, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    lead = bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    operator = bearer("operator", Scope.operator, municipalities=(TOWN,))
    async with httpx.AsyncClient(base_url=intake, timeout=10) as client:
        body = with_person(CONSULTATION_8050, 1, name="訂正 太郎", address=OLD_ADDRESS)
        submitted = await client.post("/v1/consultations", json=body, headers=submitter)
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]
        consent = {"given_by": "self", "members": [1], "share_with": [PARTNER]}
        assert (await client.post(f"/v1/cases/{case_id}/consents", json=consent, headers=submitter)).status_code == 201

    # The partner is engaged (its feed says so) and reads the address under the consent.
    feed = f"{router}/v1/feed/entries"
    await poll_json(feed, lambda b: "referral_requested" in feed_kinds(b, case_id), partner)
    details = f"{intake}/v1/cases/{case_id}/personal-details"
    released = await poll_json(details, lambda b: bool(b["members"]), partner)
    assert released["members"][0]["address"] == OLD_ADDRESS

    async with httpx.AsyncClient(base_url=intake, timeout=10) as client:
        correction = {
            "member": 1,
            "details": {"address": NEW_ADDRESS},
            "reason": "changed",
            "requested_by": "self",
            "note": "転居の届出を受けて",
        }
        corrected = await client.post(f"/v1/cases/{case_id}/corrections", json=correction, headers=submitter)
        assert corrected.status_code == 201, corrected.text
        correction_id = corrected.json()["id"]

    # On Kafka: one event, keyed by the partner (the lead never read the member's details).
    bootstrap, topic = str(settings.kafka_bootstrap_servers), topic_of(settings, PersonalDetailsCorrected)
    records = await read_events(bootstrap, topic, until=lambda rs: any(r.key == PARTNER.encode() for r in rs))
    events = [decode(r.value, PersonalDetailsCorrected) for r in records]
    assert [(e.subject, e.data.correction_id) for e in events] == [(PARTNER, correction_id)]
    data = events[0].data
    assert (data.case_id, data.member, data.fields, data.version) == (case_id, 1, ["address"], 2)
    assert (data.reason, data.corrected_by) == ("changed", SUBMITTER)

    # The partner's feed shows the notice; the lead's does not.
    await poll_json(feed, lambda b: "personal_details_corrected" in feed_kinds(b, case_id), partner)
    assert "personal_details_corrected" not in feed_kinds(await poll_json(feed, lambda b: True, lead), case_id)

    # Its next read returns the new address, and that release is on the ledger.
    again = await poll_json(details, lambda b: bool(b["members"]), partner)
    assert again["members"][0]["address"] == NEW_ADDRESS
    ledger = await poll_json(f"{intake}/v1/cases/{case_id}/disclosures", lambda b: True, operator)
    reads = [
        row
        for row in ledger
        if row["recipient"] == PARTNER and row["channel"] == "personal_details" and row["outcome"] == "released"
    ]
    assert len(reads) == 2 and all("members.1.address" in row["fields"] for row in reads)

    # Neither address, nor the note, on any topic.
    every = await read_all(bootstrap, [settings.kafka_topic_prefix + t for t in ALL_TOPICS])
    for record in every:
        text = record.value.decode("utf-8", errors="replace")
        assert OLD_ADDRESS not in text and NEW_ADDRESS not in text and "転居の届出" not in text, record.topic
