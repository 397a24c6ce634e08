"""利用停止 end to end (issue 26, done-when 2), through intake and the router as processes and the broker:
the household's request recorded at intake takes the case off every agency's feed and queue and
refuses releases of personal details (each refusal on the ledger), the lead is told; lifting it brings
all of it back."""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.settings import Settings
from tests.conftest import service_env
from tests.e2e.processes import ServiceProcess, running
from tests.e2e.test_spine import CONSULTATION_8050, poll_json
from tests.intake.conftest import with_person

pytestmark = pytest.mark.e2e

TOWN = "242080"
LEAD = "nabari-houkatsu"
SUBMITTER = "nabari-shakyo"
ENGAGED = "mie-hikikomori"  # engaged on the 8050 household, not its owner


@pytest.fixture
def intake_and_router(settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    upgrade_databases(settings, ["intake", "router"])
    with running(("intake", "router"), service_env(settings), tmp_path) as services:
        yield services


def feed_cases(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["case_id"], entry["kind"]) for entry in body["entries"]]


async def test_use_restriction_takes_the_case_off_feeds_and_refuses_releases_until_lifted(
    intake_and_router: dict[str, ServiceProcess], bearer: Callable[..., dict[str, str]]
) -> None:
    intake, router = intake_and_router["intake"].url, intake_and_router["router"].url
    submitter = bearer(SUBMITTER, Scope.submit, Scope.read_own, municipalities=(TOWN,))
    engaged = bearer(ENGAGED, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    lead = bearer(LEAD, Scope.coordinator, Scope.read_own, municipalities=(TOWN,))
    operator = bearer("operator", Scope.operator, municipalities=(TOWN,))
    async with httpx.AsyncClient(base_url=intake, timeout=10) as client:
        body = with_person(CONSULTATION_8050, 1, name="利用 停止", phone="0595-11-2222")
        submitted = await client.post("/v1/consultations", json=body, headers=submitter)
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]
        consent = {"given_by": "self", "members": [1], "share_with": ["engaged"]}
        given = await client.post(f"/v1/cases/{case_id}/consents", json=consent, headers=submitter)
        assert given.status_code == 201, given.text

    # Before: the engaged agency has the case in its feed and queue, and reads the consented details.
    feed = f"{router}/v1/feed/entries"
    await poll_json(feed, lambda b: (case_id, "referral_requested") in feed_cases(b), engaged)
    queue = f"{router}/v1/referrals"
    assert any(r["case_id"] == case_id for r in await poll_json(queue, lambda b: True, engaged))
    details = f"{intake}/v1/cases/{case_id}/personal-details"
    released = await poll_json(details, lambda b: bool(b["members"]), engaged)
    assert released["members"][0]["name"] == "利用 停止"

    async with httpx.AsyncClient(base_url=intake, timeout=10) as client:
        # Only the submitting agency (or an operator) records it: an engaged agency is refused.
        request = {"requested_by": "self", "note": "本人より電話で申出"}
        refused = await client.post(f"/v1/cases/{case_id}/use-restriction", json=request, headers=engaged)
        assert refused.status_code in (403, 404), refused.text
        recorded = await client.post(f"/v1/cases/{case_id}/use-restriction", json=request, headers=submitter)
        assert recorded.status_code == 201, recorded.text
        assert recorded.json()["status"] == "in_effect" and recorded.json()["kind"] == "use_restriction"
        received, deadline = (datetime.fromisoformat(recorded.json()[k]) for k in ("received_at", "deadline"))
        assert deadline - received == timedelta(days=30), "the default answer_within_days"
        again = await client.post(f"/v1/cases/{case_id}/use-restriction", json=request, headers=submitter)
        assert again.status_code == 409 and again.json()["type"].endswith("/use-already-restricted")

        # Releases on consent are refused at once, and the refusal is on the ledger.
        stopped = await client.get(f"/v1/cases/{case_id}/personal-details", headers=engaged)
        assert stopped.status_code == 403, stopped.text
        assert "利用停止" in stopped.json()["detail"]
        ledger = await client.get(f"/v1/cases/{case_id}/disclosures", headers=operator)
        assert ledger.status_code == 200, ledger.text
        refusals = [
            row
            for row in ledger.json()
            if row["recipient"] == ENGAGED and row["channel"] == "personal_details" and row["outcome"] == "refused"
        ]
        assert refusals and refusals[-1]["basis"] == "none"

    # The router takes the case off the engaged agency's feed and queue; the lead is told.
    await poll_json(feed, lambda b: all(c != case_id for c, _ in feed_cases(b)), engaged)
    assert all(r["case_id"] != case_id for r in (await poll_json(queue, lambda b: True, engaged)))
    lead_feed = await poll_json(feed, lambda b: (case_id, "use_restricted") in feed_cases(b), lead)
    assert [k for c, k in feed_cases(lead_feed) if c == case_id] == ["use_restricted"], "only the notice"

    async with httpx.AsyncClient(base_url=intake, timeout=10) as client:
        lifted = await client.post(
            f"/v1/cases/{case_id}/use-restriction/lift", json={"note": "本人が申出を撤回"}, headers=submitter
        )
        assert lifted.status_code == 200 and lifted.json()["status"] == "lifted", lifted.text
        requests = await client.get(f"/v1/cases/{case_id}/requests", headers=submitter)
        assert [(r["kind"], r["status"]) for r in requests.json()] == [("use_restriction", "lifted")]

    # Lifted: the case is back on the feed (with the entry that says so) and in the queue; details flow.
    back = await poll_json(feed, lambda b: (case_id, "use_restriction_lifted") in feed_cases(b), engaged)
    assert (case_id, "referral_requested") in feed_cases(back)
    assert any(r["case_id"] == case_id for r in await poll_json(queue, lambda b: True, engaged))
    again_released = await poll_json(details, lambda b: bool(b["members"]), engaged)
    assert again_released["members"][0]["name"] == "利用 停止"
