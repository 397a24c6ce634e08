"""A municipality's directory as Open Referral HSDS 3.0 (Human Services Data Specification), the open
standard referral networks exchange service directories in: one organization, service and location per
agency, the agency's areas as service areas, and its type, roles and the issue tags it is a partner for
as attributes (taxonomy terms).

The tables are HSDS's own (organization, service, location, service_at_location, service_area,
taxonomy_term, attribute), each a list under its plural name. Ids are uuid5 of the municipality and the
directory's own ids, so a record keeps its id across directory versions and a consumer can update it in
place. The directory holds no geometry or addresses, so service areas carry no `extent` and locations
no `addresses`: each area is named, and identified by a `uri` of the directory's area id.
"""

import uuid
from typing import Any

from fastapi import APIRouter
from sqlmodel import Session

from services.router import directories
from services.router.api import _require_tenant
from services.router.directories import MunicipalityConfig
from services.router.errors import DirectoryNotFound
from shared.api import PrincipalDep, RuntimeDep, in_transaction
from shared.auth import Scope, require_any
from shared.directory import Agency, Area
from shared.problems import problem_responses

HSDS_VERSION = "3.0"

# Fixed for good: every id of every export derives from it, so changing it renumbers every record.
_NAMESPACE = uuid.UUID("6d1f3b0e-5a7c-5e0b-9a51-6b6172756e6f")

# The roles the municipality gives an agency beyond the directory's `roles` (its lead and general window).
_LEAD_ROLE = "lead"
_GENERAL_WINDOW_ROLE = "general_window"

_TAXONOMIES = {
    "agency_type": "marugoto agency type (支援関係機関の種別)",
    "role": "marugoto role in the municipality's comprehensive support system (包括的な支援体制)",
    "issue_tag": "marugoto community-life issue tag the service is a partner for (実施要領 3(2) 表)",
}

router = APIRouter(prefix="/v1")


@router.get(
    "/directories/{municipality_code}/hsds.json",
    tags=["directory"],
    responses=problem_responses(401, 403, 404, 422),
)
async def get_hsds(municipality_code: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    """The directory in force as Open Referral HSDS 3.0 JSON (organizations, services, locations, areas)."""
    require_any(principal, Scope.admin, Scope.operator)
    _require_tenant(principal, municipality_code)

    def work(session: Session) -> dict[str, Any]:
        row = directories.active_version(session, municipality_code)
        if row is None:
            raise DirectoryNotFound(municipality_code)
        return export(directories.parse_config(row.body))

    return await in_transaction(runtime, work)


def export(config: MunicipalityConfig) -> dict[str, Any]:
    """The HSDS 3.0 tables of one municipality's directory version."""
    directory = config.directory
    municipality = directory.municipality
    code = municipality.code
    areas = {area.id: area for area in municipality.areas}
    tables: dict[str, list[dict[str, Any]]] = {
        "organizations": [],
        "services": [],
        "locations": [],
        "service_at_locations": [],
        "service_areas": [],
        "taxonomy_terms": [],
        "attributes": [],
    }
    terms: dict[tuple[str, str], str] = {}

    def term(taxonomy: str, value: str) -> str:
        key = (taxonomy, value)
        if key not in terms:
            terms[key] = _id(code, "taxonomy_term", taxonomy, value)
            tables["taxonomy_terms"].append(
                {
                    "id": terms[key],
                    "code": value,
                    "name": value,
                    "description": _TAXONOMIES[taxonomy],
                    "taxonomy": f"marugoto:{taxonomy}",
                }
            )
        return terms[key]

    for agency in directory.agencies:
        organization_id = _id(code, "organization", agency.id)
        service_id = _id(code, "service", agency.id)
        location_id = _id(code, "location", agency.id)
        tables["organizations"].append(
            {
                "id": organization_id,
                "name": agency.name,
                "description": f"{agency.type} ({agency.sector}) of {municipality.name}",
                "organization_identifiers": [
                    {
                        "id": _id(code, "organization_identifier", agency.id),
                        "organization_id": organization_id,
                        "identifier_scheme": f"marugoto:{code}",
                        "identifier_type": "agency_id",
                        "identifier": agency.id,
                    }
                ],
            }
        )
        tables["services"].append(
            {
                "id": service_id,
                "organization_id": organization_id,
                "name": agency.name,
                "description": f"{agency.type}, serving {_coverage(agency, areas, municipality.name)}",
                "status": "active",
            }
        )
        tables["locations"].append(
            {"id": location_id, "organization_id": organization_id, "location_type": "physical", "name": agency.name}
        )
        tables["service_at_locations"].append(
            {"id": _id(code, "service_at_location", agency.id), "service_id": service_id, "location_id": location_id}
        )
        for area_id, name, description in _served_areas(agency, areas, municipality.name, municipality.prefecture.name):
            tables["service_areas"].append(
                {
                    "id": _id(code, "service_area", agency.id, area_id),
                    "service_id": service_id,
                    "name": name,
                    "description": description,
                    "uri": f"urn:marugoto:{code}:area:{area_id}",
                }
            )
        roles = list(dict.fromkeys(agency.roles))
        roles += [_LEAD_ROLE] if agency.id == municipality.lead else []
        roles += [_GENERAL_WINDOW_ROLE] if agency.id == municipality.general_window else []
        tags = [tag for tag, types in config.rules.tag_partners.items() if agency.type in types]
        links = [("agency_type", agency.type), *(("role", r) for r in roles), *(("issue_tag", t) for t in tags)]
        for taxonomy, value in links:
            tables["attributes"].append(
                {
                    "id": _id(code, "attribute", agency.id, taxonomy, value),
                    "link_id": service_id,
                    "link_entity": "service",
                    "link_type": taxonomy,
                    "taxonomy_term_id": term(taxonomy, value),
                    "value": value,
                }
            )
    return {
        "hsds_version": HSDS_VERSION,
        "municipality_code": code,
        "directory_version": config.version,
        **tables,
    }


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _served_areas(
    agency: Agency, areas: dict[str, Area], municipality: str, prefecture: str
) -> list[tuple[str, str, str]]:
    """(area id, name, description) of each area the agency serves; the whole municipality or prefecture
    is one area named after it."""
    if agency.scope == "municipality":
        return [("municipality", municipality, "municipality-wide")]
    if agency.scope == "prefecture":
        return [("prefecture", prefecture, "prefecture-wide")]
    return [(area_id, areas[area_id].name, areas[area_id].kind) for area_id in agency.areas]


def _coverage(agency: Agency, areas: dict[str, Area], municipality: str) -> str:
    if agency.scope == "area":
        return ", ".join(areas[area_id].name for area_id in agency.areas)
    return municipality if agency.scope == "municipality" else "the prefecture"
