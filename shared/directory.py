"""A municipality's directory of areas (圏域) and support agencies (支援関係機関) for routing."""

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from shared.calendar import DEFAULT_HOURS, HoursFormatError, parse_hours

Scope = Literal["area", "municipality", "prefecture"]
Sector = Literal["welfare", "non_welfare"]

TIER1_PLACE_ROLE = "tier1_place"
"""The role of a tier-1 place (住民に身近な圏域で丸ごと受け止める場): never given a confidential case."""


class DirectoryError(Exception):
    """The directory data is malformed or inconsistent; `field` names the offending field when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownArea(LookupError):
    """An area id is not in the municipality's directory."""


class UnknownAgency(LookupError):
    """An agency id is not in the municipality's directory."""


class Area(BaseModel):
    """One area of the municipality (e.g. 小学校区, 中学校区); areas form a tree through parent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str
    kind: str
    parent: str | None = None


class Agency(BaseModel):
    """One support-related agency (支援関係機関) and the areas it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str
    type: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list)
    scope: Scope
    areas: list[str] = Field(default_factory=list)
    sector: Sector
    capacity: int | None = Field(default=None, ge=0)
    business_hours: str | None = None
    contact: dict[str, str] = Field(default_factory=dict)


class Prefecture(BaseModel):
    """The prefecture (都道府県) the municipality belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str


class Municipality(BaseModel):
    """The municipality (市町村) with its lead (協働の中核), general window and area tree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str
    prefecture: Prefecture
    lead: str = Field(min_length=1)
    general_window: str = Field(min_length=1)
    areas: list[Area] = Field(default_factory=list)
    # [LOCAL] The fiscal year from which it runs the 重層的支援体制整備事業 (Art. 106-4), which each
    # municipality adopts of its own accord (手上げ方式); None: it does not run it.
    jusoteki_since_fiscal_year: int | None = None


class Directory(BaseModel):
    """A validated municipality directory; build it with load_directory so version is the body's version id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    municipality: Municipality
    agencies: list[Agency]
    version: str

    _areas: dict[str, Area] = PrivateAttr(default_factory=dict)
    _agencies: dict[str, Agency] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # DirectoryError is not a ValueError, so pydantic lets it through unwrapped.
        _check(self.municipality, self.agencies)
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Index areas and agencies by id."""
        self._areas = {area.id: area for area in self.municipality.areas}
        self._agencies = {agency.id: agency for agency in self.agencies}

    def ancestors(self, area_id: str) -> list[Area]:
        """The area itself first, then its parent chain up to a root area."""
        chain: list[Area] = []
        current: str | None = area_id
        while current is not None:
            area = self._areas.get(current)
            if area is None:
                raise UnknownArea(f"unknown area {current!r} in {self.municipality.name}")
            chain.append(area)
            current = area.parent
        return chain

    def agency(self, agency_id: str) -> Agency:
        """The agency with this id."""
        try:
            return self._agencies[agency_id]
        except KeyError:
            raise UnknownAgency(f"unknown agency {agency_id!r} in {self.municipality.name}") from None

    def find_agency(self, agency_id: str) -> Agency | None:
        """The agency with this id, or None."""
        return self._agencies.get(agency_id)

    def agencies_of_type(self, agency_type: str) -> list[Agency]:
        """Every agency of this type, ordered by id."""
        return sorted((a for a in self.agencies if a.type == agency_type), key=lambda a: a.id)


def load_directory(data: Mapping[str, Any]) -> Directory:
    """Build a Directory from the municipality: and agencies: keys of a scenario-shaped mapping."""
    if not isinstance(data, Mapping):
        raise DirectoryError("directory data must be a mapping with municipality: and agencies:")
    missing = [key for key in ("municipality", "agencies") if key not in data]
    if missing:
        raise DirectoryError(f"directory data lacks {', '.join(missing)}")
    if not isinstance(data["agencies"], list):
        raise DirectoryError("agencies: must be a list")
    try:
        municipality = Municipality.model_validate(data["municipality"])
    except ValidationError as error:
        raise DirectoryError(_first_error(error, "municipality")) from None
    agencies: list[Agency] = []
    for index, item in enumerate(data["agencies"]):
        try:
            agencies.append(Agency.model_validate(item))
        except ValidationError as error:
            raise DirectoryError(_first_error(error, f"agencies[{index}]")) from None
    return Directory(municipality=municipality, agencies=agencies, version=_version(municipality, agencies, data))


def load_directory_file(path: Path) -> Directory:
    """Read a YAML file of the scenario shape and build its Directory."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise DirectoryError(f"cannot read {path}: {_one_line(str(error))}") from None
    return load_directory(data)


def demo_directory_path() -> Path:
    """The demo municipality's directory file shipped with the router."""
    return Path(__file__).with_name("demo_directory.yaml")


def _check(municipality: Municipality, agencies: list[Agency]) -> None:
    area_ids = _unique([area.id for area in municipality.areas], "area")
    agency_ids = _unique([agency.id for agency in agencies], "agency")
    for area in municipality.areas:
        if area.parent is not None and area.parent not in area_ids:
            raise DirectoryError(f"area {area.id!r} has unknown parent {area.parent!r}")
    _check_acyclic(municipality.areas)
    for agency in agencies:
        for area_id in agency.areas:
            if area_id not in area_ids:
                raise DirectoryError(f"agency {agency.id!r} serves unknown area {area_id!r}")
        # An area-scoped agency without areas could never be resolved: almost surely a typo.
        if agency.scope == "area" and not agency.areas:
            raise DirectoryError(f"agency {agency.id!r} has scope area but lists no areas")
        _check_hours(agency)
    for role, agency_id in (("lead", municipality.lead), ("general_window", municipality.general_window)):
        if agency_id not in agency_ids:
            raise DirectoryError(
                f"municipality {role} {agency_id!r} is not among the agencies", field=f"municipality.{role}"
            )
    lead = next(agency for agency in agencies if agency.id == municipality.lead)
    if TIER1_PLACE_ROLE in lead.roles:
        # Every tier-2 and tier-3 case is owned by the lead, and confidential ones (DV, release from
        # prison: 指針 第四) never reach a tier-1 place; a lead that is one would leave them no owner.
        raise DirectoryError(
            f"municipality lead {lead.id!r} has role {TIER1_PLACE_ROLE}: the lead (協働の中核) must be able to "
            "take every case, confidential ones included, which a tier-1 place never receives; "
            f"choose another lead or drop the role {TIER1_PLACE_ROLE} from {lead.id!r}",
            field="municipality.lead",
        )


def _check_hours(agency: Agency) -> None:
    # The conference service schedules meetings within these hours; text it cannot read would stop it
    # at start, long after the directory was accepted here.
    try:
        parse_hours(agency.business_hours, DEFAULT_HOURS)
    except HoursFormatError as error:
        raise DirectoryError(
            f"agency {agency.id!r} has unreadable business_hours: {error}", field=f"agencies.{agency.id}.business_hours"
        ) from None


def _unique(ids: list[str], what: str) -> set[str]:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise DirectoryError(f"duplicate {what} id {item!r}")
        seen.add(item)
    return seen


def _check_acyclic(areas: list[Area]) -> None:
    parents = {area.id: area.parent for area in areas}
    for start in parents:
        visited: set[str] = set()
        current: str | None = start
        while current is not None:
            if current in visited:
                raise DirectoryError(f"area {start!r} is in a parent cycle")
            visited.add(current)
            current = parents.get(current)


def _version(municipality: Municipality, agencies: list[Agency], data: Mapping[str, Any]) -> str:
    """The version id of a directory body: a short content hash of the whole body (the directory with the
    router's rules and deadlines and every service's section). The router stores and publishes a body under
    it, and every service reads the same id from the same body, so a record made anywhere names the version
    the router put in force."""
    # The directory part is hashed as normalised models in id order: spelling out a default (roles: []) or
    # reordering entries changes no decision (ties go to the smallest id), so it must not change the version.
    body = municipality.model_dump(mode="json")
    if body["jusoteki_since_fiscal_year"] is None:
        # Added later: a directory that does not set it keeps the version it had before the field existed.
        del body["jusoteki_since_fiscal_year"]
    body["areas"] = sorted(body["areas"], key=lambda area: area["id"])
    canonical = json.dumps(
        {
            **{key: value for key, value in data.items() if key not in ("municipality", "agencies")},
            "municipality": body,
            "agencies": sorted((agency.model_dump(mode="json") for agency in agencies), key=lambda a: a["id"]),
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _first_error(error: ValidationError, where: str) -> str:
    first = error.errors()[0]
    location = ".".join([where, *(str(part) for part in first["loc"])])
    more = error.error_count() - 1
    suffix = f" (and {more} more)" if more else ""
    return f"invalid {location}: {first['msg']}{suffix}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_directory_files(paths: Iterable[Path]) -> dict[str, tuple[Directory, Mapping[str, Any]]]:
    """Each configured municipality's directory with its raw file data; the demo one when none is given."""
    files = list(paths) or [demo_directory_path()]
    found: dict[str, tuple[Directory, Mapping[str, Any]]] = {}
    for path in files:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise DirectoryError(f"cannot read {path}: {_one_line(str(error))}") from None
        directory = load_directory(data)
        code = directory.municipality.code
        if code in found:
            raise DirectoryError(f"{path}: municipality {code} is configured twice")
        found[code] = (directory, data)
    return found
