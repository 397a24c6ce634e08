"""A dead letter is replayed after its cause is fixed, and is then applied exactly once."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.cli import upgrade_databases
from services.router.app import create
from shared.auth import Scope
from shared.deadletters import read_dead_letters
from shared.events import ConsultationReceived
from shared.settings import Settings
from tests.conftest import fast_group_env, fast_group_settings, service_env
from tests.router.test_directory_api import demo_body, poll_json_asgi, publish_consultation


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """The test's settings with a short consumer-group session (a join in a second instead of three)."""
    return settings.model_copy(update=fast_group_settings())


@pytest.fixture
async def router(fast: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(fast, ["router"])
    app = create(fast)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


def marugoto(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=service_env(settings, **fast_group_env()),
        capture_output=True,
        text=True,
        timeout=120,
    )


def duplicates(exposition: str) -> float:
    """Deliveries of consultation.received the router found it had applied before, from its /metrics."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "marugoto_events_consumed_total"
        and sample.labels.get("outcome") == "duplicate"
        and sample.labels.get("topic", "").endswith(ConsultationReceived.topic)
    )


async def test_dead_letter_replayed_after_the_fix_is_applied_once(
    router: httpx.AsyncClient, fast: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    settings = fast
    admin = bearer("operator", Scope.admin, Scope.operator, Scope.coordinator)
    case_id = str(uuid.uuid4())
    await publish_consultation(settings, case_id, "chiiki-16")  # an area the directory does not know yet

    letters = []
    for _ in range(30):
        letters = [
            letter for letter in await read_dead_letters(settings, quiet_s=1.0) if letter.key == case_id.encode()
        ]
        if letters:
            break
        await asyncio.sleep(0.5)
    [letter] = letters
    assert "chiiki-16" in letter.headers["x-dlq-reason"]
    listed = marugoto(settings, "dlq", "list")
    assert listed.returncode == 0 and letter.reference in listed.stdout

    # The cause is fixed: the municipality adds the area to its directory.
    body = demo_body()
    body["municipality"]["areas"].append(
        {"id": "chiiki-16", "name": "地域16", "kind": "elementary_school_district", "parent": "chu-5"}
    )
    assert (await router.put("/v1/directories/242080", json=body, headers=admin)).status_code == 200

    replayed = marugoto(settings, "dlq", "replay", letter.reference)
    assert replayed.returncode == 0, replayed.stderr
    decision = await poll_json_asgi(router, f"/v1/cases/{case_id}/decision", admin)
    referrals = (await router.get(f"/v1/referrals?case_id={case_id}", headers=admin)).json()
    assert referrals

    # Replaying the same dead letter again applies nothing twice: once the router has received it again
    # (and counted it a duplicate), its decisions and referrals are as they were.
    assert marugoto(settings, "dlq", "replay", letter.reference).returncode == 0
    for _ in range(150):
        if duplicates((await router.get("/metrics")).text) >= 1:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the router never received the dead letter replayed a second time")
    decisions = (await router.get(f"/v1/cases/{case_id}/decisions", headers=admin)).json()
    assert [d["id"] for d in decisions] == [decision["id"]]
    assert len((await router.get(f"/v1/referrals?case_id={case_id}", headers=admin)).json()) == len(referrals)
