"""Killing intake between commit and publish loses no event, and consumers apply it once."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.events import ConsultationReceived
from shared.settings import Settings
from tests.conftest import read_events, service_env, topic_of
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
        intake.kill()

        await asyncio.sleep(2)
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

        records = await read_events(
            str(settings.kafka_bootstrap_servers),
            topic_of(settings, ConsultationReceived),
            until=lambda rs: any(r.key == case_id.encode() for r in rs),
        )
        assert [r.key for r in records] == [case_id.encode()], "published exactly once, after the restart"
    finally:
        intake.stop()
        router.stop()
