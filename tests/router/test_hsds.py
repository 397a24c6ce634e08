"""The directory as Open Referral HSDS 3.0: the tables referral networks exchange, with stable ids, read by
the municipality's admins and operators only."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.cli import upgrade_databases
from services.router import hsds
from services.router.app import create
from services.router.directories import parse_config
from shared.auth import Scope
from shared.settings import Settings
from tests.router.test_directory_api import demo_body

NABARI, MIDORI = "242080", "999001"

# Required fields of each exported table in HSDS 3.0 (schema/*.json of openreferral/specification: `required`,
# and the foreign keys a tabular package must fill).
REQUIRED = {
    "organizations": ("id", "name", "description"),
    "services": ("id", "organization_id", "name", "status"),
    "locations": ("id", "location_type"),
    "service_at_locations": ("id", "service_id", "location_id"),
    "service_areas": ("id", "service_id"),
    "taxonomy_terms": ("id", "name", "description"),
    "attributes": ("id", "link_id", "link_entity", "taxonomy_term_id"),
}
SERVICE_STATUSES = {"active", "inactive", "defunct", "temporarily closed"}
LOCATION_TYPES = {"physical", "postal", "virtual"}


def demo_export() -> dict[str, Any]:
    return hsds.export(parse_config(demo_body()))


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {row["id"] for row in rows}


def test_the_demo_directory_exports_every_required_field_with_unique_uuids() -> None:
    exported = demo_export()
    assert exported["hsds_version"] == "3.0"
    every_id: list[str] = []
    for table, fields in REQUIRED.items():
        rows = exported[table]
        assert rows, f"{table} is empty"
        for row in rows:
            missing = [name for name in fields if row.get(name) in (None, "")]
            assert not missing, f"{table} row {row['id']} lacks {missing}"
        every_id += [row["id"] for row in rows]
    assert len(every_id) == len(set(every_id)), "ids are unique across the export"
    assert all(uuid.UUID(value).version == 5 for value in every_id)
    assert {s["status"] for s in exported["services"]} <= SERVICE_STATUSES
    assert {loc["location_type"] for loc in exported["locations"]} <= LOCATION_TYPES


def test_every_reference_points_at_an_exported_record() -> None:
    exported = demo_export()
    organizations = ids(exported["organizations"])
    services = ids(exported["services"])
    assert {s["organization_id"] for s in exported["services"]} <= organizations
    assert {loc["organization_id"] for loc in exported["locations"]} <= organizations
    assert {a["service_id"] for a in exported["service_areas"]} <= services
    assert {x["service_id"] for x in exported["service_at_locations"]} <= services
    assert {x["location_id"] for x in exported["service_at_locations"]} <= ids(exported["locations"])
    assert {a["link_id"] for a in exported["attributes"]} <= services
    assert {a["taxonomy_term_id"] for a in exported["attributes"]} <= ids(exported["taxonomy_terms"])


def test_each_agency_is_one_organization_with_its_service_areas_and_what_it_serves() -> None:
    body = demo_body()
    exported = demo_export()
    agencies = body["agencies"]
    assert len(exported["organizations"]) == len(exported["services"]) == len(agencies)
    assert sorted(o["name"] for o in exported["organizations"]) == sorted(a["name"] for a in agencies)

    service = {s["name"]: s["id"] for s in exported["services"]}
    areas = {area["id"]: area["name"] for area in body["municipality"]["areas"]}
    place = next(a for a in agencies if "tier1_place" in a.get("roles", []))
    served = [x["name"] for x in exported["service_areas"] if x["service_id"] == service[place["name"]]]
    assert served == [areas[area_id] for area_id in place["areas"]]

    def values(agency_name: str, link_type: str) -> set[str]:
        link = service[agency_name]
        return {a["value"] for a in exported["attributes"] if a["link_id"] == link and a["link_type"] == link_type}

    lead = next(a for a in agencies if a["id"] == body["municipality"]["lead"])
    assert {"lead", "general_window"} <= values(lead["name"], "role")
    assert values(lead["name"], "agency_type") == {lead["type"]}
    # The tags the agency is a partner for, as the directory's partner table has them.
    partner_of = {tag for tag, types in body["tag_partners"].items() if lead["type"] in types}
    assert values(lead["name"], "issue_tag") == partner_of
    assert "tier1_place" in values(place["name"], "role")


def test_ids_stay_the_same_when_the_directory_changes_elsewhere() -> None:
    """A consumer updates its records in place: an agency keeps its ids across directory versions."""
    before = demo_export()
    changed = demo_body()
    changed["agencies"].append(
        {
            "id": "nabari-new",
            "name": "新しい相談所",
            "type": "legal_support_center",
            "scope": "municipality",
            "sector": "non_welfare",
        }
    )
    after = hsds.export(parse_config(changed))
    assert after["directory_version"] != before["directory_version"]
    assert ids(before["organizations"]) < ids(after["organizations"])
    assert ids(before["service_areas"]) < ids(after["service_areas"])


@pytest.fixture
async def router(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    upgrade_databases(settings, ["router"])
    app = create(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


async def test_admins_and_operators_of_the_municipality_read_it_and_no_one_else(
    router: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    path = f"/v1/directories/{NABARI}/hsds.json"
    for scope in (Scope.admin, Scope.operator):
        response = await router.get(path, headers=bearer("nabari-staff", scope, municipalities=(NABARI,)))
        assert response.status_code == 200, response.text
        assert response.json() == demo_export()

    coordinator = bearer("nabari-houkatsu", Scope.coordinator, municipalities=(NABARI,))
    assert (await router.get(path, headers=coordinator)).status_code == 403
    theirs = bearer("midori-admin", Scope.admin, Scope.operator, municipalities=(MIDORI,))
    other = await router.get(path, headers=theirs)
    assert other.status_code == 404 and other.json()["type"].endswith("/directory-not-found")
