"""Municipalities are tenants: a credential reaches only the municipalities it names (the platform scope
reaches all), and outside them every router resource answers as if it did not exist."""

import json
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.cli import upgrade_databases
from services.router.app import create
from shared.auth import Scope
from shared.settings import Settings
from tests.router.test_directory_api import demo_body, poll_json_asgi, publish_consultation

NABARI, MIDORI = "242080", "999001"
LEAD = "nabari-houkatsu"


@pytest.fixture
async def router(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(settings, ["router"])
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


def as_if_absent(client_response: httpx.Response, absent: httpx.Response, present_id: str, absent_id: str) -> bool:
    """True when a 404 is the very answer for a thing that does not exist (ids aside)."""
    return client_response.status_code == absent.status_code == 404 and client_response.json() == json.loads(
        absent.text.replace(absent_id, present_id)
    )


async def test_an_admin_and_an_operator_of_another_municipality_find_no_directory_and_change_none(
    router: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    ours = bearer("nabari-admin", Scope.admin, Scope.operator, municipalities=(NABARI,))
    before = (await router.get(f"/v1/directories/{NABARI}/versions", headers=ours)).json()
    assert len(before) == 1
    admin = bearer("midori-admin", Scope.admin, municipalities=(MIDORI,))
    operator = bearer("midori-operator", Scope.operator, municipalities=(MIDORI,))
    for theirs in (admin, operator):
        # Their own municipality has no directory here yet: the answer for ours must be the same.
        absent = await router.get(f"/v1/directories/{MIDORI}", headers=theirs)
        found = await router.get(f"/v1/directories/{NABARI}", headers=theirs)
        assert as_if_absent(found, absent, NABARI, MIDORI), found.text
        versions = await router.get(f"/v1/directories/{NABARI}/versions", headers=theirs)
        assert versions.status_code == 404 and versions.json()["type"].endswith("/directory-not-found")

    changed = demo_body()
    changed["municipality"]["name"] = "乗っ取り市"
    put = await router.put(f"/v1/directories/{NABARI}", json=changed, headers=admin)
    assert put.status_code == 404 and put.json()["type"].endswith("/directory-not-found")
    assert (await router.put(f"/v1/directories/{NABARI}", json=changed, headers=operator)).status_code == 403
    assert (await router.get(f"/v1/directories/{NABARI}/versions", headers=ours)).json() == before, "unchanged"

    platform = bearer("vendor-ops", Scope.admin, Scope.operator, Scope.platform, municipalities=())
    assert (await router.get(f"/v1/directories/{NABARI}", headers=platform)).status_code == 200
    assert (await router.get(f"/v1/directories/{NABARI}", headers=ours)).status_code == 200


async def test_another_municipalitys_operator_finds_no_case_referral_or_feed_entry_here(
    router: httpx.AsyncClient, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    ours = bearer("nabari-operator", Scope.operator, Scope.coordinator, municipalities=(NABARI,))
    theirs = bearer("midori-operator", Scope.operator, Scope.coordinator, municipalities=(MIDORI,))
    case_id = str(uuid.uuid4())
    await publish_consultation(settings, case_id, "chiiki-01")
    await poll_json_asgi(router, f"/v1/cases/{case_id}/decision", ours)
    referrals = (await router.get(f"/v1/referrals?case_id={case_id}", headers=ours)).json()
    assert referrals

    unknown_id = str(uuid.uuid4())
    for path in ("/v1/cases/{}/decision", "/v1/cases/{}/decisions"):
        found = await router.get(path.format(case_id), headers=theirs)
        absent = await router.get(path.format(unknown_id), headers=theirs)
        assert as_if_absent(found, absent, case_id, unknown_id), found.text
    escalated = await router.post(
        f"/v1/cases/{case_id}/escalations", json={"kind": "prefecture_support"}, headers=theirs
    )
    assert escalated.status_code == 404
    assert (await router.get(f"/v1/referrals?case_id={case_id}", headers=theirs)).json() == []
    assert (await router.get(f"/v1/referrals?agency_id={LEAD}", headers=theirs)).json() == []
    moved = await router.post(
        f"/v1/referrals/{referrals[0]['id']}/transitions",
        json={"to": "cancelled", "reason_code": "duplicate"},
        headers=theirs,
    )
    absent = await router.post(
        f"/v1/referrals/{unknown_id}/transitions", json={"to": "cancelled", "reason_code": "duplicate"}, headers=theirs
    )
    assert as_if_absent(moved, absent, referrals[0]["id"], unknown_id), moved.text
    assert (await router.get(f"/v1/feed/entries?agency_id={LEAD}", headers=theirs)).json()["entries"] == []
    ours_feed = (await router.get(f"/v1/feed/entries?agency_id={LEAD}", headers=ours)).json()["entries"]
    assert case_id in {entry["case_id"] for entry in ours_feed}
    assert {r["status"] for r in (await router.get(f"/v1/referrals?case_id={case_id}", headers=ours)).json()} == {
        "requested"
    }, "nothing was moved from the other municipality"
