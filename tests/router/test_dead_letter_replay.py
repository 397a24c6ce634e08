"""A dead letter is replayed after its cause is fixed, and is then applied exactly once."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.cli import upgrade_databases
from services.router.app import create
from shared.auth import Scope
from shared.deadletters import read_dead_letters
from shared.settings import Settings
from tests.conftest import service_env
from tests.router.test_directory_api import demo_body, poll_json_asgi, publish_consultation


@pytest.fixture
async def router(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(settings, ["router"])
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


def marugoto(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_dead_letter_replayed_after_the_fix_is_applied_once(
    router: httpx.AsyncClient, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
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

    # Replaying the same dead letter again applies nothing twice.
    assert marugoto(settings, "dlq", "replay", letter.reference).returncode == 0
    await asyncio.sleep(3)
    decisions = (await router.get(f"/v1/cases/{case_id}/decisions", headers=admin)).json()
    assert [d["id"] for d in decisions] == [decision["id"]]
    assert len((await router.get(f"/v1/referrals?case_id={case_id}", headers=admin)).json()) == len(referrals)
