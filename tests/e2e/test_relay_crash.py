"""Killing intake between commit and publish loses no event, and consumers apply it once."""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.events import ConsultationReceived, RoutingDecided, decode
from shared.settings import Settings
from tests.conftest import read_all, service_env, topic_of
from tests.e2e.processes import ServiceProcess
from tests.e2e.test_spine import CONSULTATION_8050, ENGAGED_8050, poll_json

pytestmark = pytest.mark.e2e


async def test_event_committed_before_a_kill_is_published_after_restart(
    settings: Settings, tmp_path: Path, bearer: Callable[..., dict[str, str]]
) -> None:
    partner = bearer("nabari-shakyo", Scope.submit)
    operator = bearer("operator", Scope.operator)
    upgrade_databases(settings)
    env = service_env(settings)
    router = ServiceProcess("router", env, tmp_path).start()
    # The relay is off, so the consultation is committed with its outbox row and never published:
    # exactly the state a crash between commit and publish leaves behind.
    intake = ServiceProcess("intake", env, tmp_path).start(MARUGOTO_RELAY_ENABLED="false")
    try:
        router.wait_ready()
        intake.wait_ready()
        async with httpx.AsyncClient(base_url=intake.url, timeout=10) as client:
            response = await client.post("/v1/consultations", json=CONSULTATION_8050, headers=partner)
        assert response.status_code == 202
        case_id = response.json()["case_id"]
        consultation_id = response.json()["consultation_id"]
        key = case_id.encode()
        intake.kill()

        bootstrap = str(settings.kafka_bootstrap_servers)
        consultations = topic_of(settings, ConsultationReceived)
        # Nothing may be on the topic yet; reading it to the end shows so (the topic is empty, so the
        # reader returns at its timeout).
        assert not [r for r in await read_all(bootstrap, [consultations], timeout_s=5) if r.key == key]
        async with httpx.AsyncClient(timeout=5) as client:
            before = await client.get(f"{router.url}/v1/cases/{case_id}/decision", headers=operator)
        assert before.status_code == 404, "not published yet, so not routed"
        assert before.headers["content-type"] == "application/problem+json"

        intake.start()  # relay on: it finds the pending outbox row
        intake.wait_ready()
        decision = await poll_json(f"{router.url}/v1/cases/{case_id}/decision", lambda body: True, operator)
        assert decision["tier"] == 2
        referrals = await poll_json(
            f"{router.url}/v1/referrals?case_id={case_id}", lambda body: len(body) == len(ENGAGED_8050), operator
        )
        assert {r["agency_id"] for r in referrals} == ENGAGED_8050

        # Read every record until the topics are quiet: a second publish of the event would be there.
        records = await read_all(bootstrap, [consultations, topic_of(settings, RoutingDecided)], idle_s=3)
        published = [
            decode(r.value, ConsultationReceived) for r in records if r.topic == consultations and r.key == key
        ]
        assert [e.data.consultation_id for e in published] == [consultation_id], "published exactly once"
        decided = [r for r in records if r.topic != consultations and r.key == key]
        assert len(decided) == 1, "the router applied it once: one decision published"
        async with httpx.AsyncClient(timeout=5, headers=operator) as client:
            decisions = (await client.get(f"{router.url}/v1/cases/{case_id}/decisions")).json()
            referrals = (await client.get(f"{router.url}/v1/referrals?case_id={case_id}")).json()
        assert len(decisions) == 1, "one decision stored"
        assert sorted(r["agency_id"] for r in referrals) == sorted(ENGAGED_8050), "one referral per engaged agency"
    finally:
        intake.stop()
        router.stop()
